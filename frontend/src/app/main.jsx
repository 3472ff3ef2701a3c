// The app: the Vault page and the workflow step runner, routed by the address's #fragment.
import { useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import '../forms.css';
import './app.css';
import { api } from './api.js';
import { NewCredential } from './NewCredential.jsx';
import { StepRunner } from './StepRunner.jsx';
import { VaultPage } from './VaultPage.jsx';

function useRoute() {
  const [hash, setHash] = useState(window.location.hash || '#/vault');
  useEffect(() => {
    const changed = () => setHash(window.location.hash || '#/vault');
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  const [, page, id] = hash.split('/');
  return { page, id: id && decodeURIComponent(id) };
}

// The sign-in happens in this window: Exact (or the sandbox) sends it back to /callback.
const signIn = ({ authorize_url: url }) => window.location.assign(url);

function App() {
  const { page, id } = useRoute();
  const [state, setState] = useState(null);
  const reload = () => api('GET', '/api/state').then(setState);
  useEffect(() => { reload(); }, [page, id]);
  // Back to this tab from another (where a credential may have been added, removed or signed in
  // again): the lists on the page are asked for again.
  useEffect(() => {
    const back = () => { if (document.visibilityState === 'visible') reload(); };
    window.addEventListener('focus', back);
    document.addEventListener('visibilitychange', back);
    return () => {
      window.removeEventListener('focus', back);
      document.removeEventListener('visibilitychange', back);
    };
  }, []);
  if (!state) return <p className="loading">Loading…</p>;
  const tab = (name, label, href) => (
    <a className={page === name || (name === 'vault' && page === 'credentials') ? 'tab current' : 'tab'} href={href}>{label}</a>
  );
  return (
    <>
      <header>
        <span className="brand">Exact Online connector</span>
        <nav>{tab('vault', 'Vault', '#/vault')}{tab('run', 'Workflow step', '#/run')}</nav>
        {state.mode === 'sandbox' && <span className="badge">Sandbox</span>}
      </header>
      <main className="app">
        {page === 'new' && <NewCredential mode={state.mode} signIn={signIn} />}
        {page === 'run' && <StepRunner state={state} />}
        {(page === 'vault' || page === 'credentials') && (
          <VaultPage state={state} selected={page === 'credentials' ? id : null} reload={reload} signIn={signIn} />
        )}
      </main>
    </>
  );
}

createRoot(document.getElementById('app')).render(<App />);
