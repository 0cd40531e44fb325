package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/verifier"
)

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", "ebpfc verify [--kernel | --both] OUT",
		`Verifies every program compiled into OUT (the -o directory of 'ebpfc compile',
or one node's directory in it). By default it runs ebpfc's static verifier,
which needs no kernel, and prints per program its length, the estimated
number of instructions the kernel's verifier will process, and OK or the
errors (each at its instruction, as numbered in datapath.s, and its CUE
position). --kernel loads the programs through the running kernel's
verifier instead and prints its counts; --both does both and prints the
counts side by side. Nothing is attached.

Exit codes: 0 every program passed, 1 a program was rejected, 2 usage
errors (including --kernel without root or Linux), 3 internal errors.`, stderr)
	kernel := fs.Bool("kernel", false, "verify with the running kernel's verifier instead (root, Linux)")
	both := fs.Bool("both", false, "run both verifiers and show their processed-instruction counts side by side (root, Linux)")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc verify: want exactly one output directory, got %d arguments\n", len(pos))
		return exitUsage
	}
	if *kernel && *both {
		fmt.Fprintf(stderr, "ebpfc verify: --kernel and --both exclude each other\n")
		return exitUsage
	}
	dirs, err := nodeDirs(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc verify: %v\n", err)
		return exitUsage
	}
	if *kernel {
		return verifyKernel(pos[0], stdout, stderr)
	}
	return verifyStatic(dirs, *both, stdout, stderr)
}

// nodeDirs returns out itself when it is one node's directory, or the
// node directories under it, sorted.
func nodeDirs(out string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(out, compiler.ManifestFile)); err == nil {
		return []string{out}, nil
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return nil, fmt.Errorf("%s is not a compiled output directory: %v", out, err)
	}
	var dirs []string
	for _, e := range ents {
		d := filepath.Join(out, e.Name())
		if _, err := os.Stat(filepath.Join(d, compiler.ManifestFile)); e.IsDir() && err == nil {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s holds no compiled node (no %s in it or in its subdirectories); run 'ebpfc compile DIR -o %s' first", out, compiler.ManifestFile, out)
	}
	return dirs, nil
}

// errKernelUnavailable is returned by kernelCounts where no kernel
// verifier can be used (not Linux, not root).
var errKernelUnavailable = errors.New("kernel verifier unavailable")

// staticNode is one node directory checked by the static verifier.
type staticNode struct {
	node   string
	order  []string // program names in manifest order
	report *verifier.Report
}

func readStatic(dir string) (*staticNode, error) {
	var man compiler.Manifest
	b, err := os.ReadFile(filepath.Join(dir, compiler.ManifestFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, compiler.ManifestFile), err)
	}
	obj := filepath.Join(dir, compiler.ObjectFile)
	spec, err := ebpf.LoadCollectionSpec(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", obj, err)
	}
	c, err := verifier.FromSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", obj, err)
	}
	n := &staticNode{node: man.Node, report: verifier.Verify(c)}
	if n.node == "" {
		n.node = filepath.Base(dir)
	}
	for _, p := range man.Programs {
		n.order = append(n.order, p.Name)
	}
	for _, r := range n.report.Programs {
		if !slices.Contains(n.order, r.Name) {
			n.order = append(n.order, r.Name)
		}
	}
	return n, nil
}

func verifyStatic(dirs []string, both bool, stdout, stderr io.Writer) int {
	rejected := false
	for _, dir := range dirs {
		n, err := readStatic(dir)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc verify: %v\n", err)
			return exitInternal
		}
		var kernel map[string]int
		if both {
			kernel, err = kernelCounts(dir)
			switch {
			case errors.Is(err, errKernelUnavailable):
				fmt.Fprintf(stderr, "ebpfc verify --both: %v\n", err)
				return exitUsage
			case err != nil:
				fmt.Fprintf(stderr, "ebpfc verify: node %s: rejected by the kernel: %v\n", n.node, err)
				rejected = true
			}
		}
		errs := n.report.Errors()
		status := "passed ebpfc's static verifier"
		if len(errs) > 0 {
			status = fmt.Sprintf("%d error(s) from ebpfc's static verifier", len(errs))
			rejected = true
		}
		fmt.Fprintf(stdout, "node %s: %d programs, %s\n", n.node, len(n.report.Programs), status)
		if both && kernel != nil {
			fmt.Fprintf(stdout, "  %-40s %6s %10s %10s %6s\n", "program", "insns", "estimated", "kernel", "ratio")
		}
		for _, name := range n.order {
			r := n.report.Program(name)
			if r == nil {
				continue
			}
			verdict := "OK"
			if !r.OK() {
				verdict = fmt.Sprintf("FAILED (%d error(s))", len(r.Errors))
			}
			if both && kernel != nil {
				k := kernel[name]
				ratio := "-"
				if k > 0 {
					ratio = fmt.Sprintf("%.2f", float64(r.Processed)/float64(k))
				}
				fmt.Fprintf(stdout, "  %-40s %6d %10d %10d %6s  %s\n", name, r.Insns, r.Processed, k, ratio, verdict)
				continue
			}
			fmt.Fprintf(stdout, "  %-40s %5d insns  %6d processed (estimated)  %s\n", name, r.Insns, r.Processed, verdict)
		}
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s\n", e)
		}
	}
	if rejected {
		return exitConfig
	}
	return exitOK
}
