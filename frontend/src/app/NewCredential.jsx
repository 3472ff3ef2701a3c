// New App Credentials: the generated credential form; Test Connect stores it (pending) and sends
// the browser to the sign-in, which comes back to this app's /callback with the report.
import { useEffect, useState } from 'react';
import { api, extraErrors } from './api.js';
import { ConnectorForm } from './ConnectorForm.jsx';
import { ErrorBox } from './ErrorBox.jsx';

export function NewCredential({ mode, signIn }) {
  const [form, setForm] = useState(null);
  const [formData, setFormData] = useState(undefined);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api('GET', '/api/forms/credentials').then((loaded) => {
      setForm(loaded);
      setFormData(loaded.formData);
    }, (failure) => setError(failure.error));
  }, []);

  async function testConnect(data) {
    setBusy(true);
    setError(null);
    try {
      const added = await api('POST', '/api/credentials', { formData: data });
      if (added.authorize_url) signIn(added);
      else window.location.hash = `#/credentials/${encodeURIComponent(added.credential.id)}`;
    } catch (failure) {
      setError(failure.error);
      setBusy(false);
    }
  }

  return (
    <section className="card">
      <h1>New App Credentials</h1>
      {mode === 'sandbox' && (
        <p className="notice">
          Running on the embedded sandbox: the form is filled in for its registered app; give the
          connection a name. Test Connect signs in on the sandbox's consent page, as Exact would.
        </p>
      )}
      <ErrorBox error={error} />
      {form && (
        <ConnectorForm form={form} formData={formData} onChange={setFormData}
          onSubmit={testConnect} extra={extraErrors(error)}>
          <div className="buttons">
            <button type="submit" className="btn btn-primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Test Connect'}
            </button>
            <button type="button" className="btn" disabled title="Enabled after a passing Test Connect">
              Connect &amp; Create
            </button>
            <a className="btn" href="#/vault">Cancel</a>
          </div>
        </ConnectorForm>
      )}
    </section>
  );
}
