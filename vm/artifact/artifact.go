// Package artifact runs ebpfc's compiled output in the interpreter: it
// reads a node's OUT/NODE directory (datapath.o, manifest.json, maps.json)
// without a kernel and builds a vm.Machine whose maps hold the initial
// contents, applied as the kernel loader applies them.
package artifact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/vm"
)

// Artifact is one node's compiled output.
type Artifact struct {
	Dir      string
	Manifest *compiler.Manifest
	Maps     *compiler.MapsDoc
	Spec     *ebpf.CollectionSpec
}

// Read reads the artifacts in dir (one node's OUT/NODE directory).
func Read(dir string) (*Artifact, error) {
	files := map[string][]byte{}
	for _, name := range []string{compiler.ManifestFile, compiler.MapsFile, compiler.ObjectFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return Parse(dir, files)
}

// Parse reads artifacts from their files' contents, keyed by file name as
// compiler.Artifacts.Files holds them; dir names them in errors.
func Parse(dir string, files map[string][]byte) (*Artifact, error) {
	a := &Artifact{Dir: dir, Manifest: &compiler.Manifest{}, Maps: &compiler.MapsDoc{}}
	for _, f := range []struct {
		name string
		dst  any
	}{{compiler.ManifestFile, a.Manifest}, {compiler.MapsFile, a.Maps}} {
		b, ok := files[f.name]
		if !ok {
			return nil, fmt.Errorf("%s: missing", filepath.Join(dir, f.name))
		}
		if err := json.Unmarshal(b, f.dst); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f.name), err)
		}
	}
	if a.Manifest.Format != compiler.ManifestFormat {
		return nil, fmt.Errorf("%s: manifest format %d, this ebpfc reads format %d", dir, a.Manifest.Format, compiler.ManifestFormat)
	}
	obj, ok := files[compiler.ObjectFile]
	if !ok {
		return nil, fmt.Errorf("%s: missing", filepath.Join(dir, compiler.ObjectFile))
	}
	var err error
	a.Spec, err = ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, compiler.ObjectFile), err)
	}
	return a, nil
}

// Machine builds an interpreter for the artifacts: the object's maps and
// programs (program arrays filled from the object), then every maps.json
// entry written with BPF_ANY, in file order.
func (a *Artifact) Machine(opts vm.Options) (*vm.Machine, error) {
	m, err := vm.NewMachine(a.Spec, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Dir, err)
	}
	for _, dm := range a.Maps.Maps {
		mp := m.Map(dm.Name)
		if mp == nil {
			return nil, fmt.Errorf("%s: maps.json names map %s, which the object does not have", a.Dir, dm.Name)
		}
		for i, e := range dm.Entries {
			k, v, err := e.Bytes()
			if err != nil {
				return nil, fmt.Errorf("%s: map %s entry %d: %w", a.Dir, dm.Name, i, err)
			}
			if err := mp.Update(k, v, vm.UpdateAny); err != nil {
				return nil, fmt.Errorf("%s: map %s entry %d: %w", a.Dir, dm.Name, i, err)
			}
		}
	}
	return m, nil
}
