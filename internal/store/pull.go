package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub, used when Hub.Endpoint is "".
const DefaultEndpoint = "https://huggingface.co"

// ErrChecksum is returned when a downloaded file's SHA-256 differs from the
// one the Hub lists; nothing of that pull is kept.
var ErrChecksum = errors.New("store: SHA-256 mismatch")

// Hub reaches the Hugging Face Hub, or any server that speaks its two
// endpoints: GET /api/models/{repo}/tree/main (the file list, with each LFS
// file's SHA-256 as lfs.oid) and GET /{repo}/resolve/main/{path} (a file,
// with Range support). Set Endpoint from HF_ENDPOINT and Token from HF_TOKEN
// as huggingface_hub does.
type Hub struct {
	Endpoint string       // "" is DefaultEndpoint
	Token    string       // sent as "Authorization: Bearer TOKEN" when set
	Client   *http.Client // nil is http.DefaultClient
	// Revision is the branch, tag or commit to read; "" is "main".
	Revision string
}

// Progress is a pull's state, reported while bytes arrive.
type Progress struct {
	File  string // the file being downloaded
	Index int    // its position among Count files, from 1
	Count int
	Done  int64 // bytes of this file on disk (resumed bytes included)
	Total int64 // its size, -1 when unknown
	// Resumed is the bytes a .partial file already held when this file's
	// download began.
	Resumed int64
}

// hubFile is one entry of the Hub's tree listing.
type hubFile struct {
	Type string `json:"type"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

// sha256Hex is the file's SHA-256 the Hub lists, "" for non-LFS files.
func (f hubFile) sha256Hex() string {
	if f.LFS == nil {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(f.LFS.OID, "sha256:"))
}

func (f hubFile) size() int64 {
	if f.LFS != nil && f.LFS.Size > 0 {
		return f.LFS.Size
	}
	return f.Size
}

func (h Hub) endpoint() string {
	if h.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(h.Endpoint, "/")
}

func (h Hub) revision() string {
	if h.Revision == "" {
		return "main"
	}
	return h.Revision
}

func (h Hub) client() *http.Client {
	if h.Client == nil {
		return http.DefaultClient
	}
	return h.Client
}

// get sends GET u with the token and extra headers.
func (h Hub) get(ctx context.Context, u string, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if h.Token != "" {
		// net/http drops Authorization on redirects to another host (the
		// Hub's CDN), as huggingface_hub does.
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	req.Header.Set("User-Agent", "courier")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return h.client().Do(req)
}

// httpError turns a failed response into an error that says what to do.
func httpError(what string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.TrimSpace(string(b))
	hint := ""
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (a gated or private repository needs HF_TOKEN)"
	case http.StatusNotFound:
		return notFound{fmt.Sprintf("store: %s: HTTP 404 (no such repository or file): %s", what, msg)}
	}
	return fmt.Errorf("store: %s: HTTP %d%s: %s", what, resp.StatusCode, hint, msg)
}

// notFound reads as its message and matches ErrNotFound: the Hub has no
// such repository, file or quant.
type notFound struct{ msg string }

func (e notFound) Error() string        { return e.msg }
func (e notFound) Is(target error) bool { return target == ErrNotFound }

// listFiles returns every file of repo, following the Link header's pages.
func (h Hub) listFiles(ctx context.Context, repo string) ([]hubFile, error) {
	u := fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", h.endpoint(), repo, url.PathEscape(h.revision()))
	var out []hubFile
	for page := 0; u != ""; page++ {
		if page == 100 {
			return nil, fmt.Errorf("store: listing %s: more than 100 pages", repo)
		}
		resp, err := h.get(ctx, u, nil)
		if err != nil {
			return nil, fmt.Errorf("store: listing %s: %w", repo, err)
		}
		if resp.StatusCode != http.StatusOK {
			err := httpError("listing "+repo, resp)
			resp.Body.Close()
			return nil, err
		}
		var files []hubFile
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&files)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("store: listing %s: %w", repo, err)
		}
		for _, f := range files {
			if f.Type == "file" {
				out = append(out, f)
			}
		}
		u = nextLink(resp.Header.Get("Link"))
	}
	return out, nil
}

// nextLink returns the rel="next" URL of a Link header, or "".
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		u, params, ok := strings.Cut(part, ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(u), "<>")
		}
	}
	return ""
}

// Pull downloads the model named by arg (a Hub name as ParseRef reads it,
// or an http(s) URL of a .gguf file) into the store and returns it. A model
// already stored is returned at once. progress may be nil.
func (s Store) Pull(ctx context.Context, h Hub, arg string, progress func(Progress)) (Model, error) {
	if s.Dir == "" {
		return Model{}, errors.New("store: no store folder (set COURIER_HOME)")
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	var (
		ref    Ref
		source string
		files  []hubFile
		urls   []string
	)
	if IsURL(arg) {
		r, base, err := urlRef(arg)
		if err != nil {
			return Model{}, err
		}
		ref, source = r, arg
		files = []hubFile{{Type: "file", Path: base, Size: -1}}
		urls = []string{arg}
	} else {
		r, err := ParseRef(arg)
		if err != nil {
			return Model{}, err
		}
		if !r.isHubRepo() {
			return Model{}, fmt.Errorf("store: %q: want ORG/REPO[:QUANT] or an https://…/FILE.gguf URL", arg)
		}
		if r.Tag != "" {
			if m, err := s.Lookup(r); err == nil {
				return m, nil
			}
		}
		all, err := h.listFiles(ctx, r.Repo)
		if err != nil {
			return Model{}, err
		}
		cands, err := candidates(all)
		if err != nil {
			return Model{}, err
		}
		c, tag, err := pick(r.Repo, r.Tag, cands)
		if err != nil {
			return Model{}, err
		}
		ref = Ref{Repo: r.Repo, Tag: tag}
		source = h.endpoint() + "/" + r.Repo
		files = c.files
		for _, f := range files {
			urls = append(urls, h.resolveURL(r.Repo, f.Path))
		}
	}
	if m, err := s.Lookup(ref); err == nil {
		return m, nil
	}
	dir := s.dirOf(ref)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Model{}, fmt.Errorf("store: %w", err)
	}
	unlock, err := lockPull(dir, ref.String())
	if err != nil {
		return Model{}, err
	}
	defer unlock()
	if m, err := s.Lookup(ref); err == nil { // the pull that held the lock finished it
		return m, nil
	}
	man := Manifest{Name: ref.String(), Source: source}
	for i, f := range files {
		got, err := h.download(ctx, urls[i], dir, f, func(p Progress) {
			p.Index, p.Count = i+1, len(files)
			progress(p)
		})
		if errors.Is(err, ErrChecksum) {
			// Nothing of a corrupt pull stays: not this file, not its
			// siblings already downloaded.
			os.RemoveAll(dir)
			s.pruneEmpty(filepath.Dir(dir))
		}
		if err != nil {
			return Model{}, err
		}
		man.Files = append(man.Files, got)
	}
	man.PulledAt = time.Now().UTC()
	if err := writeManifest(dir, man); err != nil {
		return Model{}, fmt.Errorf("store: %w", err)
	}
	return s.read(dir)
}

// resolveURL is the Hub's download URL of a file of repo.
func (h Hub) resolveURL(repo, p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return fmt.Sprintf("%s/%s/resolve/%s/%s", h.endpoint(), repo, url.PathEscape(h.revision()), strings.Join(segs, "/"))
}

// download fetches u into dir as the base name of f.Path, resuming from
// FILE.partial, and checks its SHA-256 against the listed one (or, for a URL
// pull, the X-Linked-Etag the Hub sends for LFS files).
func (h Hub) download(ctx context.Context, u, dir string, f hubFile, progress func(Progress)) (File, error) {
	name := path.Base(f.Path)
	final := filepath.Join(dir, name)
	partial := final + ".partial"
	want := f.sha256Hex()
	total := f.size()

	fh, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	defer fh.Close()
	have, err := fh.Seek(0, io.SeekEnd)
	if err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	if total >= 0 && have > total {
		have = 0
	}
	hdr := map[string]string{}
	if have > 0 && (total < 0 || have < total) {
		hdr["Range"] = fmt.Sprintf("bytes=%d-", have)
	}
	var body io.Reader = http.NoBody
	if total < 0 || have < total {
		resp, err := h.get(ctx, u, hdr)
		if err != nil {
			return File{}, fmt.Errorf("store: downloading %s: %w", name, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0:
			if start := contentRangeStart(resp.Header.Get("Content-Range")); start != have {
				return File{}, fmt.Errorf("store: downloading %s: asked for bytes from %d, got %q", name, have, resp.Header.Get("Content-Range"))
			}
		case resp.StatusCode == http.StatusOK:
			have = 0 // the server sent everything again
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0 && total < 0:
			// A URL pull whose .partial is already whole.
		default:
			return File{}, httpError("downloading "+name, resp)
		}
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			body = resp.Body
			if total < 0 && resp.ContentLength >= 0 {
				total = have + resp.ContentLength
			}
		}
		if want == "" {
			want = strings.ToLower(strings.Trim(resp.Header.Get("X-Linked-Etag"), `"`))
			if len(want) != 64 {
				want = ""
			}
		}
	}
	if err := fh.Truncate(have); err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	// Hash what is already on disk, then the rest as it arrives.
	sum := sha256.New()
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	if _, err := io.CopyN(sum, fh, have); err != nil {
		return File{}, fmt.Errorf("store: rereading %s: %w", partial, err)
	}
	p := Progress{File: name, Done: have, Total: total, Resumed: have}
	progress(p)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := fh.Write(buf[:n]); err != nil {
				return File{}, fmt.Errorf("store: %w", err)
			}
			sum.Write(buf[:n])
			p.Done += int64(n)
			progress(p)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return File{}, fmt.Errorf("store: downloading %s: %w (run the pull again to resume from byte %d)", name, rerr, p.Done)
		}
	}
	if total >= 0 && p.Done != total {
		return File{}, fmt.Errorf("store: downloading %s: got %d of %d bytes (run the pull again to resume)", name, p.Done, total)
	}
	if err := fh.Sync(); err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if want != "" && got != want {
		fh.Close()
		os.Remove(partial)
		return File{}, fmt.Errorf("%w: %s has SHA-256 %s, the server lists %s; deleted", ErrChecksum, name, got, want)
	}
	if err := os.Rename(partial, final); err != nil {
		return File{}, fmt.Errorf("store: %w", err)
	}
	return File{Name: name, Size: p.Done, SHA256: got, Verified: want != ""}, nil
}

// contentRangeStart reads the first byte of "bytes START-END/SIZE", -1 when
// malformed.
func contentRangeStart(h string) int64 {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
