package ir

import (
	"fmt"
	"io"
)

// Pass is one transformation of a module. Doc says what the pass needs from
// its input and what it guarantees about its output, beyond Check's
// invariants, which every pass keeps.
type Pass struct {
	Name string
	Doc  string
	Run  func(*Module) error
}

// Passes lists every pass in the order Run applies them.
var Passes = []Pass{
	{
		Name: "fold_constants",
		Doc:  "needs every param named in Module.Consts; guarantees no OpParam is left, no op computes a value known at compile time except OpConst, and no branch compares two known values",
		Run:  foldNodeConstants,
	},
	{
		Name: "simplify_cfg",
		Doc:  "guarantees every block is reachable, no jump goes to an empty jump-only block, no conditional terminator has both edges to one block, and no block is the only successor of a jump from its only predecessor",
		Run:  simplifyCFG,
	},
	{
		Name: "dce",
		Doc:  "guarantees every value defined by an op without side effects is used",
		Run:  eliminateDeadCode,
	},
}

// passOrder states which passes must run before which, and why. A test
// holds Passes to it.
var passOrder = []struct{ before, after, why string }{
	{"fold_constants", "simplify_cfg", "folding turns branches on node constants into jumps, leaving blocks for simplify_cfg to remove and merge"},
	{"fold_constants", "dce", "folding leaves the consts it propagated unused"},
	{"simplify_cfg", "dce", "removing unreachable blocks removes uses, leaving more dead code"},
}

// RunOptions control Run.
type RunOptions struct {
	// Check runs Check before the first pass and after every pass; tests set
	// it.
	Check bool
	// DumpAfter names a pass after which the module is printed to Dump.
	DumpAfter string
	Dump      io.Writer
}

// Run applies Passes to m in order.
func Run(m *Module, opts RunOptions) error {
	if opts.DumpAfter != "" && passByName(opts.DumpAfter) == nil {
		return fmt.Errorf("ir: no pass called %q to dump after", opts.DumpAfter)
	}
	if opts.Check {
		if err := Check(m); err != nil {
			return fmt.Errorf("ir: before passes:\n%w", err)
		}
	}
	for _, p := range Passes {
		if err := p.Run(m); err != nil {
			return fmt.Errorf("ir: pass %s: %w", p.Name, err)
		}
		if opts.Check {
			if err := Check(m); err != nil {
				return fmt.Errorf("ir: after pass %s:\n%w", p.Name, err)
			}
		}
		if p.Name == opts.DumpAfter && opts.Dump != nil {
			fmt.Fprintf(opts.Dump, "// after %s\n", p.Name)
			if err := Print(opts.Dump, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func passByName(name string) *Pass {
	for i := range Passes {
		if Passes[i].Name == name {
			return &Passes[i]
		}
	}
	return nil
}
