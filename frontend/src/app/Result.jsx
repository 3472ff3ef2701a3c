// What a step answered: the request of a dry run, or the envelope of a run.
import { ErrorBox } from './ErrorBox.jsx';

function cell(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function Records({ records }) {
  const columns = [...new Set(records.flatMap((r) => Object.keys(r)))];
  return (
    <div className="scroll">
      <table className="grid records">
        <thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
        <tbody>
          {records.map((r, i) => (
            <tr key={r.ID ?? i}>{columns.map((c) => <td key={c}>{cell(r[c])}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Fields({ record }) {
  return (
    <table className="grid fields">
      <tbody>
        {Object.entries(record).map(([k, v]) => <tr key={k}><th>{k}</th><td>{cell(v)}</td></tr>)}
      </tbody>
    </table>
  );
}

function Data({ data, onNext }) {
  const { records, record, next_cursor: next, count, ...rest } = data;
  return (
    <>
      {records && (
        <>
          <p>{count} record{count === 1 ? '' : 's'}{next ? ', more available' : ''}</p>
          <Records records={records} />
          {next && <button className="btn" onClick={() => onNext(next)}>Next page</button>}
        </>
      )}
      {Object.keys(rest).length > 0 && <Fields record={rest} />}
      {record && (
        <>
          <h3>Record</h3>
          <Fields record={record} />
        </>
      )}
    </>
  );
}

// Exact's rate-limit headers as headroom: calls left of the minute's and the day's allowance.
function headroom(headers) {
  const get = (name) => Object.entries(headers).find(([k]) => k.toLowerCase() === `x-ratelimit-${name}`)?.[1];
  const parts = [];
  if (get('minutely-remaining') !== undefined) parts.push(`${get('minutely-remaining')} of ${get('minutely-limit')} calls left this minute`);
  if (get('remaining') !== undefined) parts.push(`${get('remaining')} of ${get('limit')} today`);
  return parts;
}

function Meta({ meta }) {
  return (
    <p className="meta">
      {meta.api_calls} API call{meta.api_calls === 1 ? '' : 's'} · {meta.duration_ms} ms
      {headroom(meta.rate_limit ?? {}).map((part) => <span key={part}> · {part}</span>)}
    </p>
  );
}

export function Result({ answer, onNext }) {
  if (!answer) return null;
  if (answer.request) {
    const { method, url, headers, json } = answer.request;
    return (
      <section className="card result" aria-label="Dry run">
        <h2>Dry run: nothing was sent</h2>
        <p><code>{method} {url}</code></p>
        <Fields record={headers} />
        {json !== null && json !== undefined && <pre>{JSON.stringify(json, null, 2)}</pre>}
      </section>
    );
  }
  const { result } = answer;
  return (
    <section className="card result" aria-label="Result" data-ok={result.ok}>
      <h2>{result.ok ? 'Done' : 'Failed'}</h2>
      {result.ok ? <Data data={result.data} onNext={onNext} /> : <ErrorBox error={result.error} />}
      <Meta meta={result.meta} />
    </section>
  );
}
