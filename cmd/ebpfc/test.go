package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/policytest"
	"github.com/ebpfc/ebpfc/source"
)

func init() {
	register(command{"test", "run a configuration's tests against its compiled programs", runTest, 35})
}

func runTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test", "ebpfc test DIR [--engine kernel|vm|auto] [--run REGEXP] [-v] [--json]",
		`Compiles the configuration in DIR for every node and runs its tests
section against the compiled programs. Each test is a connection attempt:
the first packet (TCP SYN, UDP datagram, SCTP INIT, ICMP echo request) goes
through the egress-policy program of the source endpoint on its node, then
the ingress-policy program of the destination endpoint on its node; when it
passes, the reply goes back through the destination's egress and the
source's ingress programs. Each node keeps its maps for the whole run, so a
reply meets the connection tracking state its request left. "allow" passes
when the request and the reply pass, "deny" when the request is dropped.

A test's packets are IPv4 or IPv6: the family the test names (family:
"IPv4" or "IPv6"), IPv6 for ICMPv6 (ICMP over IPv6 is an ICMPv6 echo),
otherwise IPv4 when both ends have an IPv4 address and IPv6 when they do
not. An endpoint sends from its first address of that family.

Prints one row per test, and for each failed test (every test with -v) the
programs each packet went through and the rule that decided, with its CUE
position. Tests that need what is not supported yet (services) are
reported as not run, with the reason.

Engines: kernel loads the programs with BPF_PROG_TEST_RUN (Linux, root);
vm runs them in ebpfc's interpreter; auto (the default) uses the kernel
when it can load programs here and the interpreter otherwise, and says
which it chose.

Exit status: 0 when no test failed, 1 when a test failed, 2 for errors in
the configuration (printed as file:line:col) and usage errors, 3 for
internal errors.`, stderr)
	engine := fs.String("engine", "auto", "where programs run: kernel, vm or auto")
	runRE := fs.String("run", "", "run only the tests whose name matches this regular expression")
	verbose := fs.Bool("v", false, "show the steps of every test, not only of failed ones")
	asJSON := fs.Bool("json", false, "write the results as one JSON document")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc test: want exactly one configuration directory, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	eng, err := policytest.ParseEngine(*engine)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc test: --engine: %v\n", err)
		return exitUsage
	}
	opts := policytest.Options{Engine: eng}
	if *runRE != "" {
		opts.Run, err = regexp.Compile(*runRE)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc test: --run: %v\n", err)
			return exitUsage
		}
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "ebpfc test: %s is not a directory\n", dir)
		return exitUsage
	}
	cfg, err := load.Load(dir)
	if err != nil {
		return reportTestError(stderr, err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		return reportTestError(stderr, err)
	}
	rep, err := policytest.Run(cfg, arts, opts)
	if errors.Is(err, policytest.ErrKernelUnavailable) {
		fmt.Fprintf(stderr, "ebpfc test: --engine kernel: %v; use --engine vm to run the tests in ebpfc's interpreter\n", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc test: internal error: %v\n", err)
		return exitInternal
	}
	if *asJSON {
		err = policytest.WriteJSON(stdout, rep)
	} else {
		err = policytest.WriteText(stdout, rep, policytest.TextOptions{Verbose: *verbose})
	}
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc test: writing results: %v\n", err)
		return exitInternal
	}
	if rep.Failed > 0 {
		return exitConfig
	}
	return exitOK
}

// reportTestError prints a configuration that does not load or compile.
// Its exit code is 2, not compile's 1: for ebpfc test, 1 means that a test
// failed.
func reportTestError(stderr io.Writer, err error) int {
	if errs, ok := source.AsErrors(err); ok {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		fmt.Fprintf(stderr, "ebpfc test: %d error(s) in the configuration; no test ran\n", len(errs))
		return exitUsage
	}
	fmt.Fprintf(stderr, "ebpfc test: %v\n", err)
	return exitInternal
}
