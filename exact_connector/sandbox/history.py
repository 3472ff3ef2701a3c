"""Which endpoints Exact released before 1 March 2017: the ones that still take ``$skip``.

Exact's KB ("OData | Query string options", API-FACTS §4 "Query options"): ``$skip`` is not
supported on endpoints released after 1 March 2017; they page with ``$skiptoken`` only. The catalog
has no release dates, so the sandbox knows an endpoint's age from a dated source: the service list
of Exact's own .NET SDK (github.com/exactonline/exactonline-api-dotnet-client,
``src/ExactOnline.Client.Models/Services.vb``, "Last generated on 2016-07-06", as it stood at the
repository's last commit before 1 March 2017). Every catalog endpoint listed there was released
before the cut-off and takes ``$skip``; every other one (all bulk, sync and read services among
them, which came later) answers 400. Four names of that list are no longer in the catalog.
"""

from __future__ import annotations

from exact_connector.catalog import Endpoint

__all__ = ["BEFORE_MARCH_2017", "takes_skip"]

_LISTED = (
    "accountancy/AccountInvolvedAccounts", "accountancy/AccountOwners",
    "accountancy/InvolvedUserRoles", "accountancy/InvolvedUsers", "accountancy/SolutionLinks",
    "assets/Assets", "assets/DepreciationMethods", "budget/Budgets", "cashflow/Banks",
    "cashflow/DirectDebitMandates", "cashflow/PaymentConditions", "crm/AcceptQuotation",
    "crm/AccountClasses", "crm/AccountClassificationNames", "crm/AccountClassifications",
    "crm/Accounts", "crm/Addresses", "crm/AddressStates", "crm/BankAccounts", "crm/Contacts",
    "crm/PrintQuotation", "crm/QuotationLines", "crm/Quotations", "crm/ReasonCodes",
    "crm/RejectQuotation", "crm/ReopenQuotation", "crm/ReviewQuotation",
    "documents/DocumentAttachments", "documents/DocumentCategories", "documents/DocumentFolders",
    "documents/Documents", "documents/DocumentTypeCategories", "documents/DocumentTypeFolders",
    "documents/DocumentTypes", "financial/ExchangeRates", "financial/FinancialPeriods",
    "financial/GLAccounts", "financial/GLClassifications", "financial/GLSchemes",
    "financial/GLTransactionTypes", "financial/Journals", "financial/ReportingBalance",
    "financialtransaction/BankEntries", "financialtransaction/BankEntryLines",
    "financialtransaction/CashEntries", "financialtransaction/CashEntryLines",
    "financialtransaction/TransactionLines", "financialtransaction/Transactions",
    "general/Currencies", "generaljournalentry/GeneralJournalEntries",
    "generaljournalentry/GeneralJournalEntryLines", "hrm/Costcenters", "hrm/Costunits",
    "hrm/Departments", "hrm/Divisions", "hrm/JobGroups", "hrm/JobTitles", "hrm/Schedules",
    "inventory/BatchNumbers", "inventory/ItemWarehouses", "inventory/SerialNumbers",
    "inventory/StockBatchNumbers", "inventory/StockCountLines", "inventory/StockCounts",
    "inventory/StockSerialNumbers", "inventory/StorageLocations", "inventory/Warehouses",
    "logistics/ItemGroups", "logistics/Items", "logistics/ItemVersions",
    "logistics/SalesItemPrices", "logistics/Units", "mailbox/Mailboxes",
    "mailbox/MailMessageAttachments", "mailbox/MailMessages", "manufacturing/OperationResources",
    "manufacturing/Operations", "manufacturing/ProductionAreas",
    "manufacturing/ShopOrderMaterialPlans", "manufacturing/ShopOrderRoutingStepPlans",
    "manufacturing/ShopOrders", "manufacturing/TimeTransactions", "manufacturing/Workcenters",
    "openingbalance/CurrentYear/AfterEntry", "openingbalance/CurrentYear/Processed",
    "openingbalance/PreviousYear/AfterEntry", "openingbalance/PreviousYear/Processed",
    "payroll/ActiveEmployments", "payroll/Employees", "payroll/EmploymentContractFlexPhases",
    "payroll/EmploymentContracts", "payroll/EmploymentEndReasons",
    "payroll/EmploymentOrganizations", "payroll/Employments", "payroll/EmploymentSalaries",
    "payroll/TaxEmploymentEndFlexCodes", "project/CostTransactions", "project/InvoiceTerms",
    "project/ProjectBudgetTypes", "project/ProjectHourBudgets",
    "project/ProjectRestrictionEmployees", "project/ProjectRestrictionItems",
    "project/ProjectRestrictionRebillings", "project/Projects", "project/TimeCorrections",
    "project/TimeTransactions", "purchaseentry/PurchaseEntries",
    "purchaseentry/PurchaseEntryLines", "purchaseorder/PurchaseOrderLines",
    "purchaseorder/PurchaseOrders", "read/crm/OpportunityContacts",
    "read/financial/AgingOverview", "read/financial/AgingPayablesList",
    "read/financial/AgingReceivablesList", "read/financial/JournalStatusList",
    "read/financial/OutstandingInvoicesOverview", "read/financial/PayablesList",
    "read/financial/ProfitLossOverview", "read/financial/ReceivablesList",
    "read/financial/Returns", "read/financial/RevenueList", "read/project/HourCostTypes",
    "read/project/RecentCosts", "read/project/RecentHours",
    "read/project/TimeAndBillingAccountDetails",
    "read/project/TimeAndBillingActivitiesAndExpenses",
    "read/project/TimeAndBillingEntryAccounts", "read/project/TimeAndBillingEntryProjects",
    "read/project/TimeAndBillingEntryRecentAccounts",
    "read/project/TimeAndBillingEntryRecentActivitiesAndExpenses",
    "read/project/TimeAndBillingEntryRecentHourCostTypes",
    "read/project/TimeAndBillingEntryRecentProjects", "read/project/TimeAndBillingItemDetails",
    "read/project/TimeAndBillingProjectDetails", "sales/PriceLists",
    "sales/SalesPriceListDetails", "sales/ShippingMethods", "salesentry/SalesEntries",
    "salesentry/SalesEntryLines", "salesinvoice/InvoiceSalesOrders", "salesinvoice/Layouts",
    "salesinvoice/PrintedSalesInvoices", "salesinvoice/SalesInvoiceLines",
    "salesinvoice/SalesInvoices", "salesinvoice/SalesOrderID", "salesorder/GoodsDeliveries",
    "salesorder/GoodsDeliveryLines", "salesorder/PrintedSalesOrders",
    "salesorder/SalesOrderLines", "salesorder/SalesOrders", "subscription/SubscriptionLines",
    "subscription/SubscriptionLineTypes", "subscription/SubscriptionReasonCodes",
    "subscription/SubscriptionRestrictionEmployees", "subscription/SubscriptionRestrictionItems",
    "subscription/Subscriptions", "subscription/SubscriptionTypes", "users/UserRoles",
    "users/UserRolesPerDivision", "users/Users", "vat/VATCodes", "vat/VatPercentages",
    "webhooks/WebhookSubscriptions",
)  # fmt: skip
BEFORE_MARCH_2017 = frozenset(name.lower() for name in _LISTED)


def takes_skip(endpoint: Endpoint) -> bool:
    """Whether ``$skip`` works on this endpoint (released before 1 March 2017)."""
    return endpoint.id.lower() in BEFORE_MARCH_2017
