//go:build linux

// Package runtime is ebpfc's impure edge: it loads compiled artifacts into
// the kernel, fills their maps and (in later stages) attaches and syncs them.
// Everything here needs a kernel with BPF; nothing in compiler/, ir/ or
// backend/ depends on it.
package runtime

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
)

// Artifacts is a node's compiled output read back from disk.
type Artifacts struct {
	Dir      string
	Manifest *compiler.Manifest
	// ManifestJSON is manifest.json as read, for fields the Manifest type
	// does not carry (yet), such as the event layout.
	ManifestJSON []byte
	Maps         *compiler.MapsDoc
	Spec         *ebpf.CollectionSpec
}

// ReadArtifacts reads the artifacts in dir (one node's OUT/NODE directory).
func ReadArtifacts(dir string) (*Artifacts, error) {
	files := make(map[string][]byte)
	for _, name := range []string{compiler.ManifestFile, compiler.MapsFile, compiler.ObjectFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return ParseArtifacts(dir, files)
}

// ParseArtifacts reads artifacts from their files' contents, keyed by file
// name as compiler.Artifacts.Files holds them. dir names them in errors.
func ParseArtifacts(dir string, files map[string][]byte) (*Artifacts, error) {
	a := &Artifacts{Dir: dir, Manifest: &compiler.Manifest{}, Maps: &compiler.MapsDoc{}, ManifestJSON: files[compiler.ManifestFile]}
	for name, dst := range map[string]any{compiler.ManifestFile: a.Manifest, compiler.MapsFile: a.Maps} {
		if err := json.Unmarshal(files[name], dst); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
	}
	if a.Manifest.Format != compiler.ManifestFormat {
		return nil, fmt.Errorf("%s: manifest format %d, this ebpfc reads format %d", dir, a.Manifest.Format, compiler.ManifestFormat)
	}
	var err error
	a.Spec, err = ebpf.LoadCollectionSpecFromReader(bytes.NewReader(files[compiler.ObjectFile]))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, compiler.ObjectFile), err)
	}
	return a, nil
}

// ProgramStats is what the kernel's verifier said about one program.
type ProgramStats struct {
	Name string
	// Processed is the verifier's processed-instruction count.
	Processed int
	Insns     int
}

// Datapath is a node's programs and maps loaded into the kernel (not
// attached).
type Datapath struct {
	Collection *ebpf.Collection
	Stats      []ProgramStats // in manifest order
}

// Close releases the programs and maps.
func (d *Datapath) Close() { d.Collection.Close() }

var processedRE = regexp.MustCompile(`processed (\d+) insns`)

// Load loads the artifacts through the kernel verifier and fills every map
// with its initial contents. Program arrays are filled by the loader from the
// object itself.
func Load(a *Artifacts) (*Datapath, error) {
	coll, err := ebpf.NewCollectionWithOptions(a.Spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
	})
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", a.Dir, err)
	}
	d := &Datapath{Collection: coll}
	if err := fillMaps(coll, a.Maps); err != nil {
		coll.Close()
		return nil, err
	}
	for _, p := range a.Manifest.Programs {
		prog := coll.Programs[p.Name]
		if prog == nil {
			coll.Close()
			return nil, fmt.Errorf("program %s is in the manifest but not in the object", p.Name)
		}
		st := ProgramStats{Name: p.Name, Insns: p.Instructions}
		if m := processedRE.FindStringSubmatch(prog.VerifierLog); m != nil {
			st.Processed, _ = strconv.Atoi(m[1])
		}
		d.Stats = append(d.Stats, st)
	}
	return d, nil
}

func fillMaps(coll *ebpf.Collection, doc *compiler.MapsDoc) error {
	for _, dm := range doc.Maps {
		m := coll.Maps[dm.Name]
		if m == nil {
			return fmt.Errorf("maps.json names map %s, which the object does not have", dm.Name)
		}
		for i, e := range dm.Entries {
			k, err := hex.DecodeString(e.KeyBytes)
			if err != nil {
				return fmt.Errorf("map %s entry %d key: %w", dm.Name, i, err)
			}
			v, err := hex.DecodeString(e.ValueBytes)
			if err != nil {
				return fmt.Errorf("map %s entry %d value: %w", dm.Name, i, err)
			}
			if err := m.Update(k, v, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("map %s entry %d: %w", dm.Name, i, err)
			}
		}
	}
	return nil
}

// NodeDirs returns the node directories under out (each holding a
// manifest), sorted.
func NodeDirs(out string) ([]string, error) {
	ents, err := os.ReadDir(out)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(out, e.Name())
		if _, err := os.Stat(filepath.Join(d, compiler.ManifestFile)); err == nil {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s holds no compiled node (no */%s)", out, compiler.ManifestFile)
	}
	return dirs, nil
}
