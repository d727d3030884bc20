package node

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/engine/model"
	"courier/internal/stage"
	"courier/internal/store"
)

// startStages starts m as pipeline stages: the share --stage or --layers
// names (worker), or all --stages shares in this process (serve), the
// later ones first so that the first finds them when it starts.
func (n *Node) startStages(m config.Model, dial func(string) (*natsbus.Conn, error)) error {
	path, err := store.Store{Dir: n.cfg.ModelHome}.Resolve(m.Path)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	total, err := engine.LayerCount(path)
	if err != nil {
		return fmt.Errorf("node: %s: %w", m.Name, err)
	}
	// shares splits the model into cnt shares of about equal compute (the
	// last one's blocks fewer: it also runs the output head).
	shares := func(cnt int) ([]model.LayerRange, error) {
		if cnt > total {
			return nil, fmt.Errorf("node: %s has %d layers, too few for %d stages", m.Name, total, cnt)
		}
		r, err := engine.StageShares(path, cnt)
		if err != nil {
			return nil, fmt.Errorf("node: %s: %w", m.Name, err)
		}
		return r, nil
	}
	id := n.workerID(m)
	s := n.cfg.Stages
	if s.Count > 1 {
		split, err := shares(s.Count)
		if err != nil {
			return err
		}
		for i := s.Count; i >= 2; i-- {
			if err := n.startStage(m, path, fmt.Sprintf("%s-stage-%d-of-%d", id, i, s.Count), split[i-1], dial); err != nil {
				return err
			}
		}
		end := split[0].End
		for j := range max(s.Firsts, 1) {
			fid := fmt.Sprintf("%s-stage-1-of-%d", id, s.Count)
			if s.Firsts > 1 {
				fid += fmt.Sprintf("-%d", j+1)
			}
			if err := n.startStage(m, path, fid, model.LayerRange{First: 0, End: end, Total: total}, dial); err != nil {
				return err
			}
		}
		return nil
	}
	var r model.LayerRange
	if s.Stage != "" {
		i, cnt, _ := config.ParseStage(s.Stage)
		split, err := shares(cnt)
		if err != nil {
			return err
		}
		r = split[i-1]
	} else {
		a, b, _ := config.ParseLayers(s.Layers)
		if b >= total {
			return fmt.Errorf("node: --layers %s: %s has blocks 0-%d", s.Layers, m.Name, total-1)
		}
		r = model.LayerRange{First: a, End: b + 1, Total: total}
	}
	return n.startStage(m, path, id, r, dial)
}

// startStage starts one stage of m: the first as a worker whose engine
// runs the rest through a Pipeline, a later one as a stage server.
func (n *Node) startStage(m config.Model, path, id string, r model.LayerRange, dial func(string) (*natsbus.Conn, error)) error {
	if r.IsFirst() {
		return n.startModelWorker(m, id, r, dial)
	}
	t0 := time.Now()
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: r, ContextLength: n.cfg.ContextLength, Threads: n.cfg.Threads, NoRepack: n.cfg.NoRepack,
		// A first stage's steps hold at most its batch, which is at least
		// its slots (engine.Load): the same flags bound this stage's.
		MaxRows: max(cmp.Or(n.cfg.BatchSize, 256), n.cfg.Slots+n.cfg.BackgroundSlots),
		// and its KV pool holds its (foreground) slots' contexts, or --kv-cache.
		Slots: cmp.Or(n.cfg.Slots, 4), KVCacheBytes: n.cfg.KVCacheBytes})
	if err != nil {
		return fmt.Errorf("node: load %s layers %d-%d: %w", m.Name, r.First, r.End-1, err)
	}
	mw := &modelWorker{name: m.Name, stage: st}
	n.workers = append(n.workers, mw)
	if mw.conn, err = n.stageDial(dial)("stage " + id); err != nil {
		return err
	}
	mw.stageSrv, err = stage.NewServer(mw.conn, st, stage.ServerConfig{Instance: id, Model: m.Name,
		HeartbeatInterval: n.cfg.HeartbeatInterval, DType: stageDType(n.cfg.Stages.DType)}, n.log)
	if err != nil {
		return err
	}
	n.log.Info("stage serving", "model", m.Name, "stage", id, "layers", fmt.Sprintf("%d-%d of %d", r.First, r.End-1, r.Total),
		"took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// startPipeline makes mw a pipeline's first stage: opts load blocks r and
// run the later ones through a Pipeline on a connection of its own.
func (n *Node) startPipeline(mw *modelWorker, m config.Model, id string, r model.LayerRange, opts *engine.Options, dial func(string) (*natsbus.Conn, error)) error {
	var err error
	if mw.pconn, err = n.stageDial(dial)("pipeline " + id); err != nil {
		return err
	}
	mw.pipeline, err = stage.NewPipeline(mw.pconn, stage.PipelineConfig{Instance: id, Model: m.Name, Layers: r,
		HeartbeatInterval: n.cfg.HeartbeatInterval, DType: stageDType(n.cfg.Stages.DType), Microbatches: n.cfg.Stages.Microbatches}, n.log)
	if err != nil {
		return err
	}
	opts.Layers, opts.Tail = r, mw.pipeline
	// A step's hidden rows travel in one message: lower the step's row
	// budget to what the bus's payload limit holds (4 bytes per value,
	// 14 per row, room for block tables).
	if path, err := (store.Store{Dir: n.cfg.ModelHome}).Resolve(m.Path); err == nil {
		if _, dim, err := engine.ModelShape(path); err == nil {
			fit := int((mw.pconn.MaxPayload() - 256<<10) / int64(4*dim+14))
			if batch := cmp.Or(opts.BatchSize, 256); fit < batch {
				opts.BatchSize = max(fit, opts.Slots, 1)
				n.log.Info("step budget lowered to fit the bus's payload limit", "model", m.Name, "batch_size", opts.BatchSize,
					"max_payload", mw.pconn.MaxPayload())
			}
		}
	}
	n.log.Info("pipeline first stage", "model", m.Name, "layers", fmt.Sprintf("%d-%d of %d", r.First, r.End-1, r.Total))
	return nil
}

// stageDial is how a stage's own connection is dialed: as dial, or with
// --stage-write-through over the network, writing through
// (natsbus.WriteThrough). An in-process connection (serve --stages) never
// writes through: its writes would wait for the server to read them.
func (n *Node) stageDial(dial func(string) (*natsbus.Conn, error)) func(string) (*natsbus.Conn, error) {
	if !n.cfg.Stages.WriteThrough || n.server != nil {
		return dial
	}
	return n.patient(context.Background(), func(name string) (*natsbus.Conn, error) {
		return natsbus.Dial(n.cfg.NATSURL, name, clientAuth(n.cfg), n.log, natsbus.WriteThrough())
	})
}

func stageDType(s string) stage.DType {
	if s == "f16" {
		return stage.F16
	}
	return stage.F32
}
