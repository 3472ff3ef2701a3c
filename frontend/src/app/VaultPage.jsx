// The Vault page: Application Credentials, their state, and what can be done with each.
import { useState } from 'react';
import { api } from './api.js';
import { ErrorBox } from './ErrorBox.jsx';

function age(iso) {
  if (!iso) return '—';
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

function Status({ value }) {
  return <span className={`status status-${value}`}>{value.replace('_', ' ')}</span>;
}

// A hint written for engines names the check's retry_at field; a person is given the time.
function withTime(hint, retryAt) {
  if (!retryAt) return hint;
  const when = new Date(retryAt).toLocaleString();
  return hint.includes('retry_at') ? hint.replace('retry_at', when) : `${hint} (after ${when})`;
}

export function Report({ report }) {
  if (!report) return <p className="muted">Test Connect has not run since the app started.</p>;
  return (
    <div className="report" data-ok={report.ok}>
      <h3>Test Connect: {report.ok ? 'passed' : 'failed'}</h3>
      <ul>
        {report.checks.map((check) => (
          <li key={check.name} className={check.ok ? 'ok' : 'fail'}>
            <span className="mark">{check.ok ? '✓' : '✗'}</span> <strong>{check.name}</strong>{' '}
            {check.summary}
            {check.warning && <div className="hint">{check.warning}</div>}
            {check.remediation && !check.ok && (
              <div className="hint">{withTime(check.remediation, check.retry_at)}</div>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}

// A button's work: which one is busy, the page's state reloaded after, the error to show.
// `then` runs once the page holds the new state (never a removed credential's stale row).
function useAct(reload) {
  const [busy, setBusy] = useState('');
  const [error, setError] = useState(null);
  const act = (label, work, then) => async () => {
    setBusy(label);
    setError(null);
    try {
      const done = await work();
      await reload();
      if (done !== false && then) then();
    } catch (failure) {
      setError(failure.error);
    } finally {
      setBusy('');
    }
  };
  return { busy, error, act };
}

// Remove a credential once the person confirms; false when they do not.
async function remove({ id, connector_name: name }) {
  if (!window.confirm(`Remove ${name} and its secrets?`)) return false;
  await api('DELETE', `/api/credentials/${encodeURIComponent(id)}`);
  return true;
}

function Detail({ credential, reload, signIn }) {
  const { busy, error, act } = useAct(reload);
  const path = `/api/credentials/${encodeURIComponent(credential.id)}`;
  const passed = credential.report?.ok === true;
  return (
    <section className="card detail" aria-label={`Credential ${credential.connector_name}`}>
      <h2>
        {credential.connector_name} <Status value={credential.status} />
      </h2>
      <dl>
        <dt>Server</dt><dd>{credential.server_url}</dd>
        <dt>Client ID</dt><dd><code>{credential.client_id}</code></dd>
        <dt>Divisions</dt><dd>{credential.allowed_divisions.join(', ') || '—'}</dd>
        <dt>Refresh token age</dt><dd>{age(credential.refresh_token_issued_at)}</dd>
        {Object.entries(credential.fingerprints).map(([name, value]) => (
          <div key={name} className="pair">
            <dt>{name[0].toUpperCase() + name.slice(1).replaceAll('_', ' ')}</dt><dd><code>{value ?? '—'}</code></dd>
          </div>
        ))}
      </dl>
      <Report report={credential.report} />
      {credential.auth_type === 'oauth2_authorization_code' && !credential.signs_in_here && (
        <p className="notice">
          This app signs in through {credential.redirect_uri}, not this page: reauthorize it with
          <code> exact-connector credentials reauthorize "{credential.connector_name}"</code>.
        </p>
      )}
      <ErrorBox error={error} />
      <div className="buttons">
        <button className="btn" disabled={!!busy}
          onClick={act('test', () => api('POST', `${path}/test`))}>
          {busy === 'test' ? 'Testing…' : 'Test Connect'}
        </button>
        {credential.status !== 'active' && (
          <button className="btn btn-primary" disabled={!passed || !!busy}
            title={passed ? '' : 'Enabled after a passing Test Connect'}
            onClick={act('activate', () => api('POST', `${path}/activate`))}>
            Connect &amp; Create
          </button>
        )}
        {credential.auth_type === 'oauth2_authorization_code' && credential.signs_in_here && (
          <button className="btn" disabled={!!busy}
            onClick={act('reauth', async () => signIn(await api('POST', `${path}/reauthorize`)))}>
            Reauthorize
          </button>
        )}
        <button className="btn btn-danger" disabled={!!busy}
          onClick={act('remove', () => remove(credential), () => { window.location.hash = '#/vault'; })}>
          Remove
        </button>
      </div>
    </section>
  );
}

// A credential whose record no longer decrypts: its name and what failed (never a value).
function Unreadable({ entry, selected, reload }) {
  const { busy, error, act } = useAct(reload);
  return (
    <tr className={entry.id === selected ? 'selected' : ''}>
      <td>{entry.connector_name}</td>
      <td>
        Its record no longer decrypts: <code>{entry.field ?? 'record'}</code> failed
        with <code>{entry.error_code}</code>.
        <div className="hint">{entry.hint}</div>
        <ErrorBox error={error} />
      </td>
      <td>
        <button className="btn btn-danger" disabled={!!busy}
          onClick={act('remove', () => remove(entry))}>
          {busy ? 'Removing…' : 'Remove'}
        </button>
      </td>
    </tr>
  );
}

export function VaultPage({ state, selected, reload, signIn }) {
  const [search, setSearch] = useState('');
  const needle = search.trim().toLowerCase();
  const shown = state.credentials.filter((c) =>
    [c.connector_name, c.server_url, c.status].some((v) => v.toLowerCase().includes(needle)));
  const chosen = state.credentials.find((c) => c.id === selected);
  return (
    <>
      <section className="card">
        <div className="toolbar">
          <h1>Application Credentials</h1>
          <a className="btn btn-primary" href="#/new">New App Credentials</a>
        </div>
        <input type="search" className="search" placeholder="Search Exact Online credentials"
          aria-label="Search credentials" value={search}
          onChange={(e) => setSearch(e.target.value)} />
        <div className="scroll">
        <table className="grid credentials">
          <thead>
            <tr><th>Name</th><th>Status</th><th>Server</th><th>Divisions</th><th>Refresh token age</th></tr>
          </thead>
          <tbody>
            {shown.map((c) => (
              <tr key={c.id} className={c.id === selected ? 'selected' : ''}>
                <td><a href={`#/credentials/${encodeURIComponent(c.id)}`}>{c.connector_name}</a></td>
                <td><Status value={c.status} /></td>
                <td>{c.server_url}</td>
                <td>{c.allowed_divisions.length || '—'}</td>
                <td>{age(c.refresh_token_issued_at)}</td>
              </tr>
            ))}
            {shown.length === 0 && (
              <tr><td colSpan="5" className="muted">
                {state.credentials.length ? 'No credential matches.'
                  : state.unreadable.length ? 'No credential can be read: see below.'
                    : 'No credentials yet: add one with New App Credentials.'}
              </td></tr>
            )}
          </tbody>
        </table>
        </div>
      </section>
      {state.unreadable.length > 0 && (
        <section className="card attention" aria-label="Credentials that no longer decrypt">
          <h2>Credentials that no longer decrypt</h2>
          <p className="muted">
            These records are in the vault, but its keys no longer open them, so no action can use
            them. Only their names and what failed are shown.
          </p>
          <table className="grid unreadable">
            <thead><tr><th>Name</th><th>Problem</th><th /></tr></thead>
            <tbody>
              {state.unreadable.map((entry) => (
                <Unreadable key={entry.id} entry={entry} selected={selected} reload={reload} />
              ))}
            </tbody>
          </table>
        </section>
      )}
      {chosen && <Detail credential={chosen} reload={reload} signIn={signIn} />}
    </>
  );
}
