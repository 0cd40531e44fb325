// Command ebpfc compiles declarative network configuration (CUE) into
// verified eBPF programs, one datapath per node.
//
// Exit codes: 0 success, 1 errors in the configuration (each printed as
// file:line:col: message), 2 usage errors, 3 internal errors.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/schemas"
	"github.com/ebpfc/ebpfc/source"
)

// version is set at link time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

const (
	exitOK       = 0
	exitConfig   = 1
	exitUsage    = 2
	exitInternal = 3
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
	order   int // position in the usage list
}

// commands lists the subcommands in usage order. Each command registers
// itself from the file that implements it.
var commands []command

func register(c command) {
	commands = append(commands, c)
	sort.SliceStable(commands, func(i, j int) bool { return commands[i].order < commands[j].order })
}

func init() {
	register(command{"compile", "compile a configuration directory into per-node eBPF artifacts", runCompile, 10})
	register(command{"verify", "check compiled programs with the static (or the kernel) verifier", runVerify, 40})
	register(command{"schema", "print the CUE schema of the configuration language", runSchema, 90})
	register(command{"version", "print the version of ebpfc", runVersion, 100})
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ebpfc: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "ebpfc compiles network policy written in CUE into verified eBPF programs.\n\nUsage:\n  ebpfc <command> [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'ebpfc <command> --help' for a command's flags.\n")
}

// parseInterspersed parses flags that may come before or after positional
// arguments, as in "ebpfc compile DIR -o OUT". It returns the positional
// arguments, or ok=false after printing the problem.
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseArgs is parseInterspersed that answers --help on stdout, as a
// requested help is not an error.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, code int, ok bool) {
	// The flag package prints the usage itself on -h; hold what it prints
	// so that help goes to stdout once and errors to stderr.
	orig := fs.Output()
	var held bytes.Buffer
	fs.SetOutput(&held)
	pos, code, ok = parseInterspersed(fs, args)
	if !ok && code == exitOK {
		fs.SetOutput(stdout)
		fs.Usage()
		return pos, code, ok
	}
	orig.Write(held.Bytes())
	fs.SetOutput(orig)
	return pos, code, ok
}

func newFlagSet(name, usageLine, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s\n\n%s\n", usageLine, description)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintf(out, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func runCompile(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("compile", "ebpfc compile DIR [--node NAME] [-o OUT]",
		`Compiles the .cue files (with .json endpoint inventories and Kubernetes
NetworkPolicy and Namespace objects in .yaml, .yml or .json files) in DIR. For each
node it writes OUT/NODE/ with the ELF object (datapath.o), manifest.json,
the initial map contents (maps.json), the listing (datapath.s) and the IR
(datapath.ir). Nothing is written unless the whole configuration compiles.`, stderr)
	node := fs.String("node", "", "compile only this node (default: every node)")
	out := fs.String("o", "out", "output directory")
	dumpAfter := fs.String("dump-after", "", "print the IR after this pass to standard error")
	quiet := fs.Bool("q", false, "print nothing on success")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc compile: want exactly one configuration directory, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "ebpfc compile: %s is not a directory\n", dir)
		return exitUsage
	}
	arts, err := compiler.CompileDir(dir, compiler.Options{Node: *node, DumpAfter: *dumpAfter, Dump: stderr})
	if err != nil {
		return reportError(stderr, "compile", err)
	}
	if err := compiler.WriteArtifacts(*out, arts); err != nil {
		fmt.Fprintf(stderr, "ebpfc compile: writing artifacts: %v\n", err)
		return exitInternal
	}
	if !*quiet {
		for _, a := range arts {
			fmt.Fprintf(stdout, "%s: %s\n  -> %s/%s/\n", a.Node, a, strings.TrimSuffix(*out, "/"), a.Node)
		}
	}
	return exitOK
}

// reportError prints err and returns the exit code it deserves.
func reportError(stderr io.Writer, cmd string, err error) int {
	var ue *compiler.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "ebpfc %s: %s\n", cmd, ue.Msg)
		return exitUsage
	}
	if errs, ok := source.AsErrors(err); ok {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		fmt.Fprintf(stderr, "ebpfc %s: %d error(s); nothing was written\n", cmd, len(errs))
		return exitConfig
	}
	fmt.Fprintf(stderr, "ebpfc %s: internal error: %v\n", cmd, err)
	return exitInternal
}

func runSchema(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("schema", "ebpfc schema",
		`Prints the CUE schema of the configuration language, so that
'ebpfc schema > schema.cue && cue vet schema.cue *.cue' checks files without ebpfc.`, stderr)
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "ebpfc schema: takes no arguments\n")
		return exitUsage
	}
	fmt.Fprint(stdout, schemas.Source())
	return exitOK
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "ebpfc version", "Prints the version of ebpfc and of the libraries that shape its output.", stderr)
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "ebpfc version: takes no arguments\n")
		return exitUsage
	}
	v := version
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/cilium/ebpf", "cuelang.org/go":
				deps[d.Path] = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	fmt.Fprintf(stdout, "ebpfc %s\n", v)
	var names []string
	for n := range deps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "  %s %s\n", n, deps[n])
	}
	return exitOK
}
