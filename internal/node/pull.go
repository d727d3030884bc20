package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"courier/internal/api"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/store"
)

// puller is the node's api.ModelManager (serve --allow-pull): Ollama's
// /api/pull downloads a model into the store, as `courier pull` does, and
// starts a worker for it in this process; /api/delete removes a stored
// model this process does not serve.
type puller struct {
	n    *Node
	dial func(string) (*natsbus.Conn, error)
	hub  store.Hub
	sem  chan struct{} // one pull or load at a time: they are heavy

	mu    sync.Mutex
	infos map[string]api.ModelInfo // models this puller loaded
	// owners maps each model this puller loaded to the owner (API key
	// hash, "" without keys) whose Pull loaded it: the one that may
	// delete it.
	owners map[string]string // guarded by mu
}

var _ api.ModelManager = (*puller)(nil)

func newPuller(n *Node, dial func(string) (*natsbus.Conn, error)) *puller {
	hub := n.cfg.Hub
	if hub.Client == nil {
		// No overall timeout (files are gigabytes); a stalled connection
		// fails on the transport's own timeouts, a gone client on ctx.
		hub.Client = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		}}
	}
	return &puller{n: n, dial: dial, hub: hub, sem: make(chan struct{}, 1), infos: map[string]api.ModelInfo{}, owners: map[string]string{}}
}

func (p *puller) setInfo(name string, mi api.ModelInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.infos[name] = mi
}

// Info implements api.ModelManager.
func (p *puller) Info(name string) (api.ModelInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	mi, ok := p.infos[name]
	return mi, ok
}

// Pull implements api.ModelManager: a model some worker already serves is
// done at once; otherwise it is pulled unless stored, loaded under name,
// and routable when Pull returns.
func (p *puller) Pull(ctx context.Context, name, owner string, progress func(api.PullProgress)) error {
	if store.IsURL(name) {
		return fmt.Errorf("%w: %q: name a Hugging Face model (ORG/REPO[:QUANT] or hf.co/ORG/REPO[:QUANT]); courier pull takes URLs", api.ErrBadModelName, name)
	}
	ref, err := store.ParseRef(name)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrBadModelName, err)
	}
	if slices.Contains(p.n.gateway.Models(), name) {
		return nil
	}
	if err := p.servedAs(name, ref); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if slices.Contains(p.n.gateway.Models(), name) { // pulled while this one waited
		return nil
	}
	if err := p.servedAs(name, ref); err != nil {
		return err
	}
	st := store.Store{Dir: p.n.cfg.ModelHome}
	if st.Dir == "" {
		return errors.New("node: no model store (set COURIER_HOME)")
	}
	if _, err := st.Lookup(ref); errors.Is(err, store.ErrNotFound) {
		if _, err := st.Pull(ctx, p.hub, name, func(pr store.Progress) {
			progress(api.PullProgress{Status: "pulling " + pr.File, Digest: pr.File, Total: max(pr.Total, 0), Completed: pr.Done})
		}); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: %v", api.ErrModelNotFound, err)
			}
			return err
		}
		progress(api.PullProgress{Status: "verifying sha256 digest"})
	} else if err != nil {
		return err
	}
	progress(api.PullProgress{Status: "loading model"})
	if err := p.n.addWorker(config.Model{Name: name, Path: name}, p.dial); err != nil {
		return err
	}
	p.mu.Lock()
	p.owners[name] = owner
	p.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.n.gateway.WaitWorkers(wctx, name, 1)
}

// servedAs refuses name when the same model (ref) is served under another
// spelling (a lower-case quant, hf.co/…): loading it again under this one
// would hold a second copy in memory.
func (p *puller) servedAs(name string, ref store.Ref) error {
	for _, m := range p.n.gateway.Models() {
		if r, err := store.ParseRef(m); err == nil && m != name && r == ref {
			return fmt.Errorf("%w: %s is served as %s: use that name", api.ErrBadModelName, name, m)
		}
	}
	return nil
}

// Delete implements api.ModelManager: a model /api/pull loaded is
// unloaded first (its running answers finish, up to --drain-timeout); one
// served from the command line (--model) is refused. Only the owner whose
// Pull loaded a model may delete it; a stored model no Pull of this
// process loaded only without API keys (owner "": every caller is the
// same one).
func (p *puller) Delete(name, owner string) error {
	ref, err := store.ParseRef(name)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrBadModelName, err)
	}
	// Not while a pull runs: it may be writing or loading the files this
	// would remove.
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	default:
		return fmt.Errorf("%w: a pull is running; delete %s once it is done", api.ErrModelInUse, name)
	}
	p.mu.Lock()
	by, pulled := p.owners[name]
	p.mu.Unlock()
	if by != owner {
		if pulled {
			return fmt.Errorf("%w: %s was pulled by another API key; only that key may delete it", api.ErrNotOwner, name)
		}
		return fmt.Errorf("%w: %s was not pulled through /api/pull by this key; the operator deletes it with courier models rm", api.ErrNotOwner, name)
	}
	st := store.Store{Dir: p.n.cfg.ModelHome}
	if m, err := st.Lookup(ref); err == nil {
		p.n.mu.Lock()
		configured := slices.ContainsFunc(p.n.workers, func(w *modelWorker) bool {
			if pulled && w.name == name {
				return false
			}
			return w.name == name || (w.path != "" && strings.HasPrefix(w.path, m.Dir+string(filepath.Separator)))
		})
		p.n.mu.Unlock()
		if configured {
			return fmt.Errorf("%w: %s: this process serves it from its command line (--model); delete it once serve runs without it", api.ErrModelInUse, name)
		}
	}
	if pulled {
		ctx, cancel := context.WithTimeout(context.Background(), p.n.cfg.DrainTimeout)
		err := p.n.removeWorker(ctx, name)
		cancel()
		if err != nil {
			return err
		}
		p.mu.Lock()
		delete(p.infos, name)
		delete(p.owners, name)
		p.mu.Unlock()
	}
	if _, err := st.Remove(name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s is not in the model store", api.ErrModelNotFound, name)
		}
		return err
	}
	p.n.log.Info("model deleted from the store", "model", name, "unloaded", pulled)
	return nil
}

// removeWorker stops and closes the built-in engine worker serving name,
// in the order Shutdown stops workers: stop accepting, drain (until ctx
// ends), close the host (its last heartbeat tells gateways), the
// connection, the worker and the engine.
func (n *Node) removeWorker(ctx context.Context, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return errors.New("node: shutting down")
	}
	i := slices.IndexFunc(n.workers, func(w *modelWorker) bool { return w.name == name && w.engine != nil })
	if i < 0 {
		return nil
	}
	w := n.workers[i]
	w.host.StopAccepting()
	derr := w.worker.Drain(ctx) // past ctx, the answers left are cancelled and re-dispatched
	w.host.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cerr := w.conn.Close(cctx)
	w.worker.Close()
	eerr := w.engine.Close()
	n.workers = slices.Delete(n.workers, i, i+1)
	n.log.Info("model unloaded", "model", name, "drain", derr)
	return errors.Join(cerr, eerr)
}

// addWorker starts a worker for m while the node runs (/api/pull); a
// worker that fails to start is closed again.
func (n *Node) addWorker(m config.Model, dial func(string) (*natsbus.Conn, error)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return errors.New("node: shutting down")
	}
	before := len(n.workers)
	err := n.startWorker(m, dial)
	if err == nil {
		n.log.Info("model pulled and served", "model", m.Name)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, w := range n.workers[before:] {
		if w.host != nil {
			w.host.Close()
		}
		if w.conn != nil {
			_ = w.conn.Close(ctx)
		}
		if w.worker != nil {
			w.worker.Close()
		}
		if w.engine != nil {
			_ = w.engine.Close()
		}
	}
	n.workers = n.workers[:before]
	return err
}
