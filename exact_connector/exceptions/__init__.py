"""The whole error tree of exact-connector.

Families are grouped by what the caller should do next, and each family is a *category*:

    ExactConnectorError
    ├── InputError                      user: fix the input and run again
    │   ├── UnknownEndpoint
    │   ├── MethodNotSupported
    │   ├── DivisionNotAllowed
    │   ├── NotFound
    │   ├── ExactRejected               Exact refused the data (400 validation)
    │   └── InvalidSignature            a webhook delivery's HashCode does not match
    ├── ConfigError                     config: fix the connector's configuration
    │   ├── ManifestError
    │   ├── InvalidServerUrl
    │   ├── HostNotAllowed
    │   │   ├── RedirectNotAllowed
    │   │   └── PaginationLinkRejected
    │   ├── InvalidClient
    │   ├── ReauthRequired
    │   ├── CredentialNotFound
    │   ├── CredentialExists
    │   │   └── CredentialPending       the name's sign-in never finished
    │   ├── CredentialNotActive         an action on a credential not yet activated
    │   ├── AccessDenied                Exact answered 403 (scope, licence, blocked user)
    │   ├── VaultPermissions            a vault file or directory is unsafe or unreadable
    │   └── VaultKeyError
    │       ├── VaultLocked
    │       ├── VaultKeyMismatch
    │       └── VaultKeyUnknown
    ├── TransientError                  transient: retry later, possibly at ``retry_at``
    │   ├── RateLimited
    │   │   └── DailyRateLimited
    │   ├── ErrorBudgetExhausted
    │   ├── RequestTimeout
    │   ├── StepCancelled
    │   ├── TokenRefreshInProgress
    │   ├── ConcurrentUpdate
    │   └── VaultBusy
    └── SystemError_                    system: stop and look before doing anything else
        ├── OutcomeUnknown
        ├── ExactError
        ├── TokenResponseInvalid
        ├── PaginationError
        ├── VaultIntegrityError
        │   ├── VaultCorrupt
        │   └── VaultUnsupportedFormat
        └── VaultIOError

Every class has a stable ``code`` (the engine's error code), a ``category``, ``retryable``, and a
one-line ``hint``. Messages are built by this package from safe fields only; third-party exceptions
are re-raised ``from None`` so their text (which may hold a token or a URL with a secret) never
travels with ours.

The base and the four family roots are in ``_base``; each family's classes in its own module
(``_user``, ``_config``, ``_transient``, ``_system``). Import them all from here.
"""

from __future__ import annotations

from exact_connector.exceptions._base import (
    EXIT_CODES,
    Category,
    ConfigError,
    ExactConnectorError,
    FieldError,
    InputError,
    SystemError_,
    TransientError,
)
from exact_connector.exceptions._config import (
    AccessDenied,
    CredentialExists,
    CredentialNotActive,
    CredentialNotFound,
    CredentialPending,
    HostNotAllowed,
    InvalidClient,
    InvalidServerUrl,
    ManifestError,
    PaginationLinkRejected,
    ReauthRequired,
    RedirectNotAllowed,
    VaultKeyError,
    VaultKeyMismatch,
    VaultKeyUnknown,
    VaultLocked,
    VaultPermissions,
)
from exact_connector.exceptions._system import (
    ExactError,
    OutcomeUnknown,
    PaginationError,
    TokenResponseInvalid,
    VaultCorrupt,
    VaultIntegrityError,
    VaultIOError,
    VaultUnsupportedFormat,
)
from exact_connector.exceptions._transient import (
    ConcurrentUpdate,
    DailyRateLimited,
    ErrorBudgetExhausted,
    RateLimited,
    RequestTimeout,
    StepCancelled,
    TokenRefreshInProgress,
    VaultBusy,
)
from exact_connector.exceptions._user import (
    DivisionNotAllowed,
    ExactRejected,
    InvalidSignature,
    MethodNotSupported,
    NotFound,
    UnknownEndpoint,
)

__all__ = [
    "EXIT_CODES",
    "AccessDenied",
    "Category",
    "ConcurrentUpdate",
    "ConfigError",
    "CredentialExists",
    "CredentialNotActive",
    "CredentialNotFound",
    "CredentialPending",
    "DailyRateLimited",
    "DivisionNotAllowed",
    "ErrorBudgetExhausted",
    "ExactConnectorError",
    "ExactError",
    "ExactRejected",
    "FieldError",
    "HostNotAllowed",
    "InputError",
    "InvalidClient",
    "InvalidServerUrl",
    "InvalidSignature",
    "ManifestError",
    "MethodNotSupported",
    "NotFound",
    "OutcomeUnknown",
    "PaginationError",
    "PaginationLinkRejected",
    "RateLimited",
    "ReauthRequired",
    "RedirectNotAllowed",
    "RequestTimeout",
    "StepCancelled",
    "SystemError_",
    "TokenRefreshInProgress",
    "TokenResponseInvalid",
    "TransientError",
    "UnknownEndpoint",
    "VaultBusy",
    "VaultCorrupt",
    "VaultIOError",
    "VaultIntegrityError",
    "VaultKeyError",
    "VaultKeyMismatch",
    "VaultKeyUnknown",
    "VaultLocked",
    "VaultPermissions",
    "VaultUnsupportedFormat",
]

# Tracebacks, reprs and pickles name the one public home of each class, not the module it lives in.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith(__name__ + "."):
        _value.__module__ = __name__
del _name, _value
