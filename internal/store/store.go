package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// ErrNotFound is returned when a name is not in the store.
var ErrNotFound = errors.New("store: model not found")

// manifestName is the file that marks a complete model.
const manifestName = "manifest.json"

// Store is a model folder. The zero value has no folder: Resolve then takes
// paths only.
type Store struct {
	Dir string
}

// Home returns the store folder: COURIER_HOME, else XDG_CACHE_HOME/courier,
// else HOME/.cache/courier ("" when none is set), read through lookup.
func Home(lookup func(string) (string, bool)) string {
	if v, ok := lookup("COURIER_HOME"); ok && v != "" {
		return v
	}
	if v, ok := lookup("XDG_CACHE_HOME"); ok && v != "" {
		return filepath.Join(v, "courier")
	}
	if v, ok := lookup("HOME"); ok && v != "" {
		return filepath.Join(v, ".cache", "courier")
	}
	return ""
}

// Manifest describes one stored model.
type Manifest struct {
	// Name is the model's canonical name, REPO:TAG.
	Name string `json:"name"`
	// Source is where it was pulled from (the repository or URL).
	Source string `json:"source"`
	// Files are the GGUF file(s) in order; the first is the one to load
	// (a split model's first part).
	Files []File `json:"files"`
	// PulledAt is when the pull finished.
	PulledAt time.Time `json:"pulled_at"`
}

// File is one file of a model.
type File struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the file's digest, lower-case hex: checked against the
	// Hub's when Verified, else computed while downloading.
	SHA256   string `json:"sha256"`
	Verified bool   `json:"verified"`
}

// Model is a stored model as List and Lookup return it.
type Model struct {
	Manifest
	// Path is the file to load (Files[0]) and Dir the model's folder.
	Path string
	Dir  string
	// Size is the sum of the files' sizes.
	Size int64
}

// Ref returns the model's parsed name.
func (m Model) Ref() Ref {
	r, _ := ParseRef(m.Name)
	return r
}

func (s Store) modelsDir() string { return filepath.Join(s.Dir, "models") }

// dirOf is the folder of a model with a tag.
func (s Store) dirOf(r Ref) string {
	return filepath.Join(s.modelsDir(), filepath.FromSlash(r.Repo), r.Tag)
}

// Resolve turns a model argument into a file path: an existing file path is
// returned as it is; otherwise s is read as a store name. The error says
// how to get a missing model.
func (s Store) Resolve(arg string) (string, error) {
	if _, err := os.Stat(arg); err == nil {
		return arg, nil
	}
	if IsURL(arg) {
		r, _, err := urlRef(arg)
		if err != nil {
			return "", err
		}
		arg = r.String()
	}
	ref, err := ParseRef(arg)
	if err != nil || strings.HasSuffix(strings.ToLower(arg), ".gguf") {
		return "", fmt.Errorf("model %q: no such file", arg)
	}
	if s.Dir == "" {
		return "", fmt.Errorf("model %q: no such file, and no model store (set COURIER_HOME)", arg)
	}
	m, err := s.Lookup(ref)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("model %q: no such file, and not in the store at %s (courier pull %s)", arg, s.Dir, arg)
		}
		return "", err
	}
	return m.Path, nil
}

// Lookup finds a stored model. Without a tag it takes the repository's only
// tag, else DefaultQuant, else "latest"; several others are an error that
// lists them.
func (s Store) Lookup(r Ref) (Model, error) {
	if r.Tag != "" {
		return s.read(s.dirOf(r))
	}
	tags, err := s.tags(r.Repo)
	if err != nil {
		return Model{}, err
	}
	switch {
	case len(tags) == 0:
		return Model{}, fmt.Errorf("%w: %s", ErrNotFound, r.Repo)
	case len(tags) == 1:
		r.Tag = tags[0]
	case slices.Contains(tags, DefaultQuant):
		r.Tag = DefaultQuant
	case slices.Contains(tags, latestTag):
		r.Tag = latestTag
	default:
		names := make([]string, len(tags))
		for i, t := range tags {
			names[i] = r.Repo + ":" + t
		}
		return Model{}, fmt.Errorf("store: %s has several models; name one: %s", r.Repo, strings.Join(names, ", "))
	}
	return s.read(s.dirOf(r))
}

// tags lists the complete models of a repository.
func (s Store) tags(repo string) ([]string, error) {
	dir := filepath.Join(s.modelsDir(), filepath.FromSlash(repo))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var tags []string
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), manifestName)); err == nil {
				tags = append(tags, e.Name())
			}
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// read loads the model in dir.
func (s Store) read(dir string) (Model, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		rel, _ := filepath.Rel(s.modelsDir(), dir)
		return Model{}, fmt.Errorf("%w: %s", ErrNotFound, filepath.ToSlash(rel))
	}
	if err != nil {
		return Model{}, fmt.Errorf("store: %w", err)
	}
	var man Manifest
	if err := json.Unmarshal(b, &man); err != nil || len(man.Files) == 0 {
		return Model{}, fmt.Errorf("store: %s: damaged manifest (remove the folder and pull again)", dir)
	}
	m := Model{Manifest: man, Dir: dir, Path: filepath.Join(dir, man.Files[0].Name)}
	for _, f := range man.Files {
		m.Size += f.Size
	}
	return m, nil
}

// List returns every complete model, sorted by name.
func (s Store) List() ([]Model, error) {
	if s.Dir == "" {
		return nil, nil
	}
	var out []Model
	err := filepath.WalkDir(s.modelsDir(), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == s.modelsDir() {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != manifestName {
			return nil
		}
		m, err := s.read(filepath.Dir(p))
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Incomplete is a pull that did not finish: its folder has no manifest.
type Incomplete struct {
	Name  string // REPO:TAG, what pull resumes and Remove deletes
	Bytes int64  // downloaded so far
}

// Incomplete lists unfinished pulls, sorted by name.
func (s Store) Incomplete() ([]Incomplete, error) {
	if s.Dir == "" {
		return nil, nil
	}
	sizes := map[string]int64{}
	err := filepath.WalkDir(s.modelsDir(), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == s.modelsDir() {
			return filepath.SkipAll
		}
		if err != nil || d.IsDir() || d.Name() == lockName || d.Name() == manifestName {
			return err
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, manifestName)); err == nil {
			return nil
		}
		rel, err := filepath.Rel(s.modelsDir(), dir)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		name := strings.Join(parts[:len(parts)-1], "/") + ":" + parts[len(parts)-1]
		if st, err := d.Info(); err == nil {
			sizes[name] += st.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	out := make([]Incomplete, 0, len(sizes))
	for n, b := range sizes {
		out = append(out, Incomplete{Name: n, Bytes: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a stored model (name as for Lookup), or an unfinished pull
// of REPO:TAG, and returns it.
func (s Store) Remove(name string) (Model, error) {
	r, err := ParseRef(name)
	if err != nil {
		return Model{}, err
	}
	m, err := s.Lookup(r)
	if errors.Is(err, ErrNotFound) && r.Tag != "" {
		dir := s.dirOf(r)
		if _, serr := os.Stat(dir); serr == nil {
			m = Model{Manifest: Manifest{Name: r.String()}, Dir: dir}
			err = nil
		}
	}
	if err != nil {
		return Model{}, err
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		return Model{}, fmt.Errorf("store: %w", err)
	}
	s.pruneEmpty(filepath.Dir(m.Dir))
	return m, nil
}

// pruneEmpty removes dir and its parents while they are empty, up to the
// models folder.
func (s Store) pruneEmpty(dir string) {
	root := s.modelsDir()
	for i := 0; i < 4 && dir != root && strings.HasPrefix(dir, root); i++ {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// writeManifest writes m into dir atomically (temp file, rename): the model
// exists from then on.
func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, manifestName))
}
