// Package compiler is ebpfc's driver: it loads a configuration, lowers it per
// node, runs the IR passes, generates eBPF and assembles each node's
// artifacts (ELF object, manifest, initial map contents, listing and IR dump).
// It is a pure function of its inputs: it never touches the kernel, and the
// same input gives the same bytes.
package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// The file names of a node's artifacts, inside OUT/NODE/.
const (
	ObjectFile = "datapath.o"
	// XDPObjectFile holds only the node's XDP programs and the maps they use,
	// for attaching with iproute2 ("ip link set dev D xdp obj xdp.o sec
	// xdp"): iproute2 loads just the program it attaches, and libbpf then
	// cannot fill datapath.o's tail-call slots with programs it did not load.
	XDPObjectFile = "xdp.o"
	ListingFile   = "datapath.s"
	IRFile        = "datapath.ir"
	ManifestFile  = "manifest.json"
	MapsFile      = "maps.json"
)

// Options control a compilation.
type Options struct {
	// Node restricts compilation to one node; "" compiles every node.
	Node string
	// DumpAfter, when set, writes the IR after the named pass to Dump.
	DumpAfter string
	Dump      io.Writer
	// CheckEveryPass runs ir.Check after lowering and after every pass, as
	// the tests do. Without it Check runs once, on the final IR.
	CheckEveryPass bool
	// PerProgram runs the passes and code generation on every program on
	// its own instead of once per program shape (template.go). The output
	// is the same; it is slower, and there to check that.
	PerProgram bool
}

// Artifacts is everything compiled for one node.
type Artifacts struct {
	Node    string
	Lowered *lower.Result
	// Module is the IR after the passes. Programs stamped from one shape
	// template share the ops they have in common: read it, do not change
	// it.
	Module   *ir.Module
	Object   *backend.Object
	Files    map[string][]byte // by file name
	Manifest *Manifest
}

// CompileDir loads the configuration in dir and compiles it.
func CompileDir(dir string, opts Options) ([]*Artifacts, error) {
	cfg, err := load.Load(dir)
	if err != nil {
		return nil, err
	}
	return Compile(cfg, opts)
}

// Compile compiles cfg for every node, or for opts.Node. Errors in the
// configuration come back as source.Errors; any other error is a bug.
func Compile(cfg *model.Config, opts Options) ([]*Artifacts, error) {
	if errs := lower.Supported(cfg); len(errs) > 0 {
		return nil, errs
	}
	nodes := cfg.Nodes
	if opts.Node != "" {
		i := slices.IndexFunc(nodes, func(n *model.Node) bool { return n.Name == opts.Node })
		if i < 0 {
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			return nil, &UsageError{Msg: fmt.Sprintf("no node %q in the configuration (nodes: %v)", opts.Node, names)}
		}
		nodes = nodes[i : i+1]
	}
	var out []*Artifacts
	var errs source.Errors
	for _, n := range nodes {
		a, err := compileNode(cfg, n, opts)
		if err != nil {
			if l, ok := source.AsErrors(err); ok {
				errs = append(errs, l...)
				continue
			}
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		out = append(out, a)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return out, nil
}

// UsageError is a mistake in how ebpfc was called rather than in the
// configuration.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func compileNode(cfg *model.Config, n *model.Node, opts Options) (*Artifacts, error) {
	res, err := lower.Node(cfg, n)
	if err != nil {
		return nil, err
	}
	m, obj, covered, err := compileModule(res.Module, opts)
	if err != nil {
		return nil, err
	}
	res.Module = m
	if covered != nil {
		err = verifyShapes(obj, covered)
	} else {
		err = verifyObject(obj)
	}
	if err != nil {
		return nil, err
	}
	elf, err := backend.WriteELF(obj)
	if err != nil {
		return nil, err
	}
	a := &Artifacts{
		Node:    n.Name,
		Lowered: res,
		Module:  m,
		Object:  obj,
		Files: map[string][]byte{
			ObjectFile:  elf,
			ListingFile: backend.Listing(obj),
		},
	}
	if a.Files[IRFile], err = irText(m); err != nil {
		return nil, err
	}
	if xo := objectOfType(obj, ebpf.XDP); xo != nil {
		b, err := backend.WriteELF(xo)
		if err != nil {
			return nil, err
		}
		a.Files[XDPObjectFile] = b
	}
	maps, err := encodeContents(m, res.Contents)
	if err != nil {
		return nil, err
	}
	a.Files[MapsFile] = maps
	a.Manifest = buildManifest(n, res, obj, a.Files)
	man, err := a.Manifest.Marshal()
	if err != nil {
		return nil, err
	}
	a.Files[ManifestFile] = man
	return a, nil
}

// compileModule runs the passes and code generation on the lowered module
// m: once per program shape, or, with opts.PerProgram or a dump after a
// pass, over the whole module, which it then changes in place. An error in
// the shapes' compilation compiles the whole module again, so that errors
// are reported as the whole module's. covered, when not nil, marks the
// programs whose template's static verification covers them
// (verifyShapes).
func compileModule(m *ir.Module, opts Options) (out *ir.Module, obj *backend.Object, covered []bool, err error) {
	if !opts.PerProgram && opts.DumpAfter == "" {
		if out, obj, st, err := compileShapes(m, opts); err == nil {
			return out, obj, st.covered, nil
		}
	}
	if opts.CheckEveryPass {
		if err := ir.Check(m); err != nil {
			return nil, nil, nil, fmt.Errorf("lowering produced invalid IR: %w", err)
		}
	}
	if err := ir.Run(m, ir.RunOptions{Check: opts.CheckEveryPass, DumpAfter: opts.DumpAfter, Dump: opts.Dump}); err != nil {
		return nil, nil, nil, err
	}
	if !opts.CheckEveryPass {
		if err := ir.Check(m); err != nil {
			return nil, nil, nil, fmt.Errorf("passes produced invalid IR: %w", err)
		}
	}
	obj, err = backend.Generate(m)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, obj, nil, nil
}

// irText is m's text form (ir.Print), written straight into a buffer
// sized for it: the dump of a large node is hundreds of megabytes.
func irText(m *ir.Module) ([]byte, error) {
	n := 0
	for _, p := range m.Programs {
		for _, b := range p.Blocks {
			n += 40 * (len(b.Ops) + 2)
		}
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	err := ir.Print(b, m)
	return b.Bytes(), err
}

// objectOfType returns the programs of obj of type t with the maps they
// use, or nil when obj has none.
func objectOfType(obj *backend.Object, t ebpf.ProgramType) *backend.Object {
	used := make(map[string]bool)
	out := &backend.Object{License: obj.License}
	for _, p := range obj.Programs {
		if p.Type != t {
			continue
		}
		out.Programs = append(out.Programs, p)
		for _, ins := range p.Insns {
			if ins.IsLoadFromMap() && ins.Reference() != "" {
				used[ins.Reference()] = true
			}
		}
	}
	if len(out.Programs) == 0 {
		return nil
	}
	for _, m := range obj.Maps {
		if used[m.Name] {
			out.Maps = append(out.Maps, m)
		}
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
