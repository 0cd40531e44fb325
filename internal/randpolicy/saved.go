package randpolicy

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/tools/txtar"
)

// Saved is a minimised disagreement as a txtar archive: a comment saying
// where it came from, the configuration's CUE files, the probe line, and
// what the reference evaluator and the kernel decided at each side when it
// was saved:
//
//	Found by the differential test (seed 17, probe 42), minimised in 61 steps.
//	-- cluster.cue --
//	...
//	-- policies.cue --
//	...
//	-- probe --
//	tcp 10.0.1.1:40000 > 10.0.2.2:80 syn totlen=19
//	-- reference --
//	packet 1 from_x_e0: pass open
//	packet 1 to_y_e2: drop header (malformed)
//	-- kernel --
//	packet 1 from_x_e0: pass open
//	packet 1 to_y_e2: pass allow y/p0 ingress[0]
//
// The reference and kernel sections record the bug; a replay compares the
// two afresh and must find them equal once it is fixed.
type Saved struct {
	Comment   string
	Files     map[string][]byte // the .cue files
	Probe     string
	Reference []string
	Kernel    []string
}

// Sections of a saved case that are not configuration files.
const (
	probeSection     = "probe"
	referenceSection = "reference"
	kernelSection    = "kernel"
)

// NewSaved records the steps of a probe.
func NewSaved(comment string, files map[string][]byte, p Probe, steps []Step) *Saved {
	s := &Saved{Comment: comment, Files: files, Probe: p.String()}
	for _, st := range steps {
		prefix := fmt.Sprintf("packet %d %s%s: ", st.Packet+1, st.Side.Program(), st.where())
		s.Reference = append(s.Reference, prefix+st.Reference.String())
		s.Kernel = append(s.Kernel, prefix+st.Kernel.String())
	}
	return s
}

// Format returns the archive's bytes.
func (s *Saved) Format() []byte {
	ar := &txtar.Archive{Comment: []byte(strings.TrimSpace(s.Comment) + "\n")}
	var names []string
	for name := range s.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ar.Files = append(ar.Files, txtar.File{Name: name, Data: s.Files[name]})
	}
	lines := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	ar.Files = append(ar.Files,
		txtar.File{Name: probeSection, Data: []byte(s.Probe + "\n")},
		txtar.File{Name: referenceSection, Data: lines(s.Reference)},
		txtar.File{Name: kernelSection, Data: lines(s.Kernel)},
	)
	return txtar.Format(ar)
}

// ParseSaved reads a saved case; name is used in errors.
func ParseSaved(name string, data []byte) (*Saved, error) {
	ar := txtar.Parse(data)
	s := &Saved{Comment: string(ar.Comment), Files: map[string][]byte{}}
	for _, f := range ar.Files {
		text := strings.TrimSpace(string(f.Data))
		switch {
		case f.Name == probeSection:
			s.Probe = text
		case f.Name == referenceSection:
			s.Reference = strings.Split(text, "\n")
		case f.Name == kernelSection:
			s.Kernel = strings.Split(text, "\n")
		case strings.HasSuffix(f.Name, ".cue"):
			s.Files[f.Name] = f.Data
		default:
			return nil, fmt.Errorf("%s: unknown section %q (want .cue files, probe, reference, kernel)", name, f.Name)
		}
	}
	if s.Probe == "" {
		return nil, fmt.Errorf("%s: no probe section", name)
	}
	if len(s.Files) == 0 {
		return nil, fmt.Errorf("%s: no .cue files", name)
	}
	return s, nil
}
