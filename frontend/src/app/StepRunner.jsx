// The workflow step: pick a credential and an action, fill its hydrated form, dry-run or run it.
import { useEffect, useRef, useState } from 'react';
import { api, extraErrors, progressLine, streamed } from './api.js';
import { ConnectorForm } from './ConnectorForm.jsx';
import { ErrorBox } from './ErrorBox.jsx';
import { Result } from './Result.jsx';

// Lists the form depends on: asking again with these values refreshes the dependent dropdowns.
const DRIVERS = ['division', 'endpoint'];
const drivers = (data) => Object.fromEntries(DRIVERS.filter((k) => data?.[k] !== undefined && data[k] !== '').map((k) => [k, data[k]]));

function liveSources(uiSchema) {
  const found = new Set();
  JSON.stringify(uiSchema).replace(/"options_from":"([a-z_]+)\?[^"]*division/g, (_, s) => found.add(s));
  return [...found];
}

// A run the connector refused for its input: its field errors, to show at the fields too.
const fieldsRefused = (answer) => (answer?.result?.ok === false ? answer.result.error : null);

export function StepRunner({ state }) {
  const active = state.credentials.filter((c) => c.status === 'active');
  const [credential, setCredential] = useState(active[0]?.id ?? '');
  const [actions, setActions] = useState([]);
  const [action, setAction] = useState('');
  const [form, setForm] = useState(null);
  const [formData, setFormData] = useState({});
  const [search, setSearch] = useState({ source: '', text: '' });
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState('');
  const [progress, setProgress] = useState(null);
  const asked = useRef('');
  // What the page shows now, for an answer that arrives after the person changed it.
  const latest = useRef({});
  const formRef = useRef(null);
  latest.current = { action, credential, formData, search };

  useEffect(() => { api('GET', '/api/actions').then(setActions); }, []);

  // The chosen credential was removed (or deactivated) elsewhere: the first active one, if any.
  const activeIds = active.map((c) => c.id).join(' ');
  useEffect(() => {
    if (!active.some((c) => c.id === credential)) setCredential(active[0]?.id ?? '');
  }, [activeIds]);

  async function load(values, searched) {
    const key = JSON.stringify([credential, action, values, searched]);
    if (!credential || !action || key === asked.current) return;
    asked.current = key;
    setBusy('form');
    try {
      const body = { credential, values, search: searched ? { [searched.source]: searched.text } : null };
      const loaded = await api('POST', `/api/forms/${action}`, body);
      if (asked.current === key) setForm(loaded);
    } catch (failure) {
      setError(failure.error);
    } finally {
      setBusy('');
    }
  }

  // A new step starts in the credential's default division, so its live lists come filled.
  useEffect(() => {
    const division = active.find((c) => c.id === credential)?.default_division;
    const start = division ? { division } : {};
    setForm(null);
    setFormData(start);
    setAnswer(null);
    setError(null);
    asked.current = '';
    load(start);
  }, [credential, action]);

  useEffect(() => {
    if (!form) return undefined;
    const timer = setTimeout(() => load(drivers(formData), search.text ? search : null), 300);
    return () => clearTimeout(timer);
  }, [JSON.stringify(drivers(formData))]);

  async function send(data, dryRun) {
    setBusy(dryRun ? 'dry' : 'run');
    setError(null);
    setAnswer(null);
    setProgress(null);
    const body = { credential, formData: data, dry_run: dryRun };
    const path = `/api/run/${action}`;
    try {
      const answered = await (dryRun ? api('POST', path, body) : streamed(path, body, setProgress));
      setAnswer(answered);
      const done = !dryRun && answered?.result?.ok ? answered.result.data : null;
      if (done?.deleted === true || done?.updated === true) {
        afterChange({ action, credential, data }, done.deleted === true);
      }
    } catch (failure) {
      setError(failure.error ?? {
        message: 'The page could not read the answer to this step.',
        code: 'unreadable_answer', category: 'system',
        hint: dryRun ? 'Nothing was sent; try the dry run again.'
          : 'The step may have run in Exact Online: list the records to check before running it again.',
      });
    } finally {
      setBusy('');
      setProgress(null);
    }
  }

  // A record deleted or updated: the form asks for its lists again, so a deleted record is no
  // longer offered, nor chosen, and an updated one is labelled with its new values. Only if the
  // person is still on that step (the answer may come after they moved on), and with what the
  // form holds now, not what was sent.
  function afterChange(sent, gone) {
    const now = latest.current;
    if (now.action !== sent.action || now.credential !== sent.credential) return;
    const current = now.formData;
    const kept = gone && current.id === sent.data.id ? { ...current, id: undefined } : current;
    setFormData(kept);
    asked.current = '';
    load(drivers(kept), now.search.text ? now.search : null);
  }

  const dryRun = () => {
    if (formRef.current?.validateForm()) send(formData, true);
  };
  const nextPage = (cursor) => {
    const data = { ...formData, cursor };
    setFormData(data);
    send(data, false);
  };
  const sources = form ? liveSources(form.uiSchema) : [];

  return (
    <>
      <section className="card">
        <h1>Workflow step</h1>
        {active.length === 0 && (
          <p className="notice">No active credential yet: add one on the <a href="#/vault">Vault</a> page.</p>
        )}
        <div className="pickers">
          <label>Credential
            <select value={credential} onChange={(e) => setCredential(e.target.value)} aria-label="Credential">
              {active.map((c) => <option key={c.id} value={c.id}>{c.connector_name}</option>)}
            </select>
          </label>
          <label>Action
            <select value={action} onChange={(e) => setAction(e.target.value)} aria-label="Action">
              <option value="">Choose an action…</option>
              {actions.map((a) => <option key={a.id} value={a.id}>{a.title}</option>)}
            </select>
          </label>
        </div>
        {sources.length > 0 && (
          <form className="search-lists" onSubmit={(e) => { e.preventDefault(); asked.current = ''; load(drivers(formData), search); }}>
            <select aria-label="List to search" value={search.source}
              onChange={(e) => setSearch({ ...search, source: e.target.value })}>
              <option value="">Narrow a list…</option>
              {sources.map((s) => <option key={s} value={s}>{s.replace('_', ' ')}</option>)}
            </select>
            <input type="search" aria-label="Search text" value={search.text}
              onChange={(e) => setSearch({ ...search, text: e.target.value })} />
            <button className="btn" disabled={!search.source}>Search</button>
          </form>
        )}
        {busy === 'form' && <p className="progress" role="status">Loading the lists from Exact Online…</p>}
        {form?.warnings?.map((w) => <p key={w.path ?? w.message} className="notice">{w.message ?? String(w)}</p>)}
        <ErrorBox error={error} />
        {form && (
          <ConnectorForm ref={formRef} form={form} formData={formData} onChange={setFormData}
            onSubmit={(data) => send(data, false)} onError={() => setAnswer(null)} extra={extraErrors(error ?? fieldsRefused(answer))}>
            <div className="buttons">
              <button type="button" className="btn" onClick={dryRun} disabled={!!busy}>Dry run</button>
              <button type="submit" className="btn btn-primary" disabled={!!busy}>
                {busy === 'run' ? 'Running…' : 'Run'}
              </button>
            </div>
          </ConnectorForm>
        )}
        {busy === 'run' && (
          <p className="progress" role="status">Running…{progress && ` ${progressLine(progress)}`}</p>
        )}
      </section>
      <Result answer={answer} onNext={nextPage} />
    </>
  );
}
