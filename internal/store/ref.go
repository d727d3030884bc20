package store

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
)

// DefaultQuant is the quantization a pull picks when the name has none and
// the repository holds several.
const DefaultQuant = "Q4_K_M"

// latestTag is the tag of models pulled from a plain URL.
const latestTag = "latest"

// Ref is a parsed model name: a repository ("ORG/REPO", or a single STEM for
// URL pulls) and a tag ("" when the name had none).
type Ref struct {
	Repo string
	Tag  string
}

// String is the canonical name, "REPO:TAG" or "REPO".
func (r Ref) String() string {
	if r.Tag == "" {
		return r.Repo
	}
	return r.Repo + ":" + r.Tag
}

var partRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// hubPrefixes are the host prefixes accepted before ORG/REPO.
var hubPrefixes = []string{"hf.co/", "huggingface.co/"}

// ParseRef reads "hf.co/ORG/REPO:TAG", "ORG/REPO:TAG", "ORG/REPO" or "STEM"
// (with an optional ":TAG"). Tags are canonicalised to upper case (quant
// names), except "latest".
func ParseRef(name string) (Ref, error) {
	s := name
	for _, p := range hubPrefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			s = rest
			break
		}
	}
	repo, tag := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 && i > strings.LastIndex(s, "/") {
		repo, tag = s[:i], s[i+1:]
		if tag == "" {
			return Ref{}, fmt.Errorf("store: model name %q: empty tag after ':'", name)
		}
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return Ref{}, fmt.Errorf("store: model name %q: want ORG/REPO[:QUANT]", name)
	}
	for _, p := range parts {
		if !partRE.MatchString(p) || p == ".." {
			return Ref{}, fmt.Errorf("store: model name %q: %q is not a valid name part (letters, digits, '.', '_', '-')", name, p)
		}
	}
	if tag != "" {
		if !partRE.MatchString(tag) {
			return Ref{}, fmt.Errorf("store: model name %q: bad tag %q", name, tag)
		}
		tag = canonicalTag(tag)
	}
	return Ref{Repo: repo, Tag: tag}, nil
}

// canonicalTag upper-cases a quant tag; "latest" stays as it is.
func canonicalTag(t string) string {
	if strings.EqualFold(t, latestTag) {
		return latestTag
	}
	return strings.ToUpper(t)
}

// isHubRepo reports whether r names a Hub repository (ORG/REPO).
func (r Ref) isHubRepo() bool { return strings.Contains(r.Repo, "/") }

// IsURL reports whether s is an http(s) URL (a direct file pull).
func IsURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// urlRef is the store name of a direct URL pull: the file's stem, tag latest.
func urlRef(raw string) (Ref, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Ref{}, "", fmt.Errorf("store: %q: %w", raw, err)
	}
	base := path.Base(u.Path)
	if !strings.HasSuffix(strings.ToLower(base), ".gguf") {
		return Ref{}, "", fmt.Errorf("store: %q: a direct URL must end in .gguf", raw)
	}
	stem := base[:len(base)-len(".gguf")]
	if !partRE.MatchString(stem) {
		return Ref{}, "", fmt.Errorf("store: %q: file name %q cannot be a model name", raw, base)
	}
	return Ref{Repo: stem, Tag: latestTag}, base, nil
}

// splitRE matches one part of a split GGUF: PREFIX-00001-of-00003.gguf.
var splitRE = regexp.MustCompile(`(?i)^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// candidate is one model in a repository: a single GGUF or every part of a
// split one, in order.
type candidate struct {
	label string // the path, or the split prefix with "-*-of-N.gguf"
	files []hubFile
}

// candidates groups a repository's GGUF files into models. Projector files
// (mmproj) are left out: they are not language models.
func candidates(files []hubFile) ([]candidate, error) {
	var out []candidate
	splits := map[string]*candidate{}
	totals := map[string]int{}
	for _, f := range files {
		base := path.Base(f.Path)
		if !strings.HasSuffix(strings.ToLower(base), ".gguf") || strings.Contains(strings.ToLower(base), "mmproj") {
			continue
		}
		m := splitRE.FindStringSubmatch(f.Path)
		if m == nil {
			out = append(out, candidate{label: f.Path, files: []hubFile{f}})
			continue
		}
		key := m[1] + "-of-" + m[3]
		c := splits[key]
		if c == nil {
			c = &candidate{label: m[1] + "-*-of-" + m[3] + ".gguf"}
			splits[key] = c
			var n int
			fmt.Sscan(m[3], &n)
			totals[key] = n
		}
		c.files = append(c.files, f)
	}
	for key, c := range splits {
		sort.Slice(c.files, func(i, j int) bool { return c.files[i].Path < c.files[j].Path })
		if len(c.files) != totals[key] {
			return nil, fmt.Errorf("store: split model %s has %d of its %d parts in the repository", c.label, len(c.files), totals[key])
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	return out, nil
}

// quantRE finds a quantization name in a file name.
var quantRE = regexp.MustCompile(`(?i)(?:^|[^A-Za-z0-9])(I?Q[1-8]_K_[SMLX]L?|I?Q[1-8]_[0-9K](?:_[SMLX]+)?|IQ[1-4]_[A-Z]+|TQ[12]_0|BF16|F16|F32|MXFP4)(?:[^A-Za-z0-9]|$)`)

// quantOf is the quantization named in p, upper case, or "".
func quantOf(p string) string {
	m := quantRE.FindAllStringSubmatch(path.Base(p), -1)
	if len(m) == 0 {
		return ""
	}
	return strings.ToUpper(m[len(m)-1][1])
}

// pick chooses the model for quant among cands: the one whose name contains
// quant case-insensitively (preferring a whole-word match when several do);
// with quant "", the only one, else DefaultQuant. Errors list the choices.
func pick(repo, quant string, cands []candidate) (candidate, string, error) {
	if len(cands) == 0 {
		return candidate{}, "", fmt.Errorf("store: %s holds no GGUF file", repo)
	}
	if quant == "" {
		if len(cands) == 1 {
			tag := quantOf(cands[0].label)
			if tag == "" {
				tag = latestTag
			}
			return cands[0], tag, nil
		}
		c, _, err := pick(repo, DefaultQuant, cands)
		if err != nil {
			return candidate{}, "", fmt.Errorf("store: %s holds several models and none is %s; name one: %s", repo, DefaultQuant, choices(repo, cands))
		}
		return c, DefaultQuant, nil
	}
	var hits []candidate
	for _, c := range cands {
		if strings.Contains(strings.ToUpper(c.label), strings.ToUpper(quant)) {
			hits = append(hits, c)
		}
	}
	if len(hits) > 1 {
		var exact []candidate
		for _, c := range hits {
			if strings.EqualFold(quantOf(c.label), quant) {
				exact = append(exact, c)
			}
		}
		if len(exact) == 1 {
			hits = exact
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], canonicalTag(quant), nil
	case 0:
		return candidate{}, "", notFound{fmt.Sprintf("store: %s has no file matching %q; choices: %s", repo, quant, choices(repo, cands))}
	default:
		return candidate{}, "", fmt.Errorf("store: %q matches several files of %s: %s", quant, repo, choices(repo, hits))
	}
}

// choices lists candidates for an error message, as names one can pull.
func choices(repo string, cands []candidate) string {
	parts := make([]string, len(cands))
	for i, c := range cands {
		q := quantOf(c.label)
		if q == "" {
			parts[i] = c.label
		} else {
			parts[i] = fmt.Sprintf("%s:%s (%s)", repo, q, c.label)
		}
	}
	return strings.Join(parts, ", ")
}
