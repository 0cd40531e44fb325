//go:build linux

package runtime

// Loading the programs an apply needs, before anything that runs changes.
// A node with thousands of endpoints has tens of thousands of programs and
// maps; holding a descriptor for each at once can exceed the limit on open
// files. So when many programs are loaded, each one is pinned in a staging
// directory as soon as the verifier accepts it and its descriptor closed;
// it is opened again only for the moment it is swapped in.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

const (
	stagingDir = "ebpfd-staging"
	pendingDir = "ebpfd-pending"
	// stageAbove is how many programs an apply keeps open at most; above
	// it, programs are staged in bpffs.
	stageAbove = 256
)

// loadSet is the maps and programs one apply created.
type loadSet struct {
	dir   string
	maps  map[string]*ebpf.Map // every map of the new datapath; fresh ones are owned
	fresh map[string]bool
	progs map[string]*ebpf.Program
	// staged names the programs pinned under dir instead of held open.
	staged map[string]bool
	tags   map[string]string
}

// newLoadSet creates the maps that are not kept (kept ones come from keep)
// and loads the programs in need, in name order. Program arrays are created
// empty; the caller fills them.
func newLoadSet(pinDir string, spec *ebpf.CollectionSpec, keep map[string]*ebpf.Map, need []string) (ls *loadSet, err error) {
	ls = &loadSet{
		dir:   filepath.Join(pinDir, stagingDir),
		maps:  make(map[string]*ebpf.Map),
		fresh: make(map[string]bool),
		progs: make(map[string]*ebpf.Program), staged: make(map[string]bool),
		tags: make(map[string]string),
	}
	defer func() {
		if err != nil {
			ls.close()
		}
	}()
	for _, name := range sortedKeys(spec.Maps) {
		if m := keep[name]; m != nil {
			ls.maps[name] = m
			continue
		}
		ms := spec.Maps[name].Copy()
		ms.Contents = nil
		ms.Pinning = ebpf.PinNone
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return ls, fmt.Errorf("creating map %s: %w", name, err)
		}
		ls.maps[name], ls.fresh[name] = m, true
	}
	stage := len(need) > stageAbove
	if stage {
		os.RemoveAll(ls.dir)
		if err := os.MkdirAll(ls.dir, 0o700); err != nil {
			return ls, err
		}
	}
	for _, name := range need {
		ps := spec.Programs[name].Copy()
		for i := range ps.Instructions {
			ins := &ps.Instructions[i]
			if !ins.IsLoadFromMap() || ins.Reference() == "" {
				continue
			}
			m := ls.maps[ins.Reference()]
			if m == nil {
				return ls, fmt.Errorf("program %s uses map %s, which the object does not define", name, ins.Reference())
			}
			if err := ins.AssociateMap(m); err != nil {
				return ls, fmt.Errorf("program %s: %w", name, err)
			}
		}
		p, err := ebpf.NewProgram(ps)
		if err != nil {
			return ls, fmt.Errorf("program %s: %w", name, err)
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			return ls, fmt.Errorf("reading the tag of %s: %w", name, err)
		}
		ls.tags[name] = info.Tag
		if !stage {
			ls.progs[name] = p
			continue
		}
		err = p.Pin(filepath.Join(ls.dir, name))
		p.Close()
		if err != nil {
			return ls, fmt.Errorf("staging program %s: %w", name, err)
		}
		ls.staged[name] = true
	}
	return ls, nil
}

// program returns the loaded program name, open, and a function to call
// when done with it.
func (ls *loadSet) program(name string) (*ebpf.Program, func(), error) {
	if p := ls.progs[name]; p != nil {
		return p, func() {}, nil
	}
	if !ls.staged[name] {
		return nil, nil, fmt.Errorf("program %s was not loaded", name)
	}
	p, err := ebpf.LoadPinnedProgram(filepath.Join(ls.dir, name), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("opening staged program %s: %w", name, err)
	}
	return p, func() { p.Close() }, nil
}

// take hands a fresh map over to the caller, who closes it.
func (ls *loadSet) take(name string) *ebpf.Map {
	delete(ls.fresh, name)
	return ls.maps[name]
}

// close releases what was not handed over and removes the staged pins.
func (ls *loadSet) close() {
	for name := range ls.fresh {
		ls.maps[name].Close()
	}
	ls.fresh = nil
	for _, p := range ls.progs {
		p.Close()
	}
	ls.progs = nil
	if len(ls.staged) > 0 {
		if err := os.RemoveAll(ls.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
	}
}
