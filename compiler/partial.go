package compiler

import (
	"fmt"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
)

// CompilePartial compiles part of node n's lowering — the programs an
// incremental change adds to a running datapath (lower.Delta.Programs) —
// through the same passes, code generation and static verifier as Compile,
// and returns their bytecode and the manifest entries that describe them
// (programs, the maps they use, cookies, endpoints). It writes no ELF,
// listing or IR dump: a runtime loads the programs directly.
func CompilePartial(n *model.Node, res *lower.Result) (*backend.Object, *Manifest, error) {
	m := res.Module
	if err := ir.Run(m, ir.RunOptions{}); err != nil {
		return nil, nil, err
	}
	if err := ir.Check(m); err != nil {
		return nil, nil, fmt.Errorf("passes produced invalid IR: %w", err)
	}
	obj, err := backend.Generate(m)
	if err != nil {
		return nil, nil, err
	}
	if err := verifyObject(obj); err != nil {
		return nil, nil, err
	}
	return obj, buildManifest(n, res, obj, nil), nil
}
