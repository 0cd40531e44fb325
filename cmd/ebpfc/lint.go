package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/ebpfc/ebpfc/compiler/lint"
)

func init() {
	register(command{"lint", "check a configuration for policy mistakes, offline", runLint, 30})
}

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lint", "ebpfc lint DIR [--format text|json|sarif] [--verifier-budget N]",
		`Checks the configuration in DIR for policy mistakes without a kernel:
shadowed and denied rules, selectors that select nothing, unresolved named
ports, endpoints left open, ingress open to the internet, maps too small and
programs above the verifier budget. Each finding has an id (EBPFC000...), a
severity, a position, a message and a hint; docs/lint.md describes every
check. Findings go to standard output, ordered by position.

Exit status: 1 when any finding is an error, 0 otherwise (warnings and info
do not fail), 2 for usage errors, 3 for internal errors.`, stderr)
	format := fs.String("format", "text", "output format: text, json or sarif (SARIF 2.1.0)")
	budget := fs.Int("verifier-budget", lint.DefaultVerifierBudget, "most processed instructions a program may need in the kernel's verifier")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc lint: want exactly one configuration directory, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	switch *format {
	case "text", "json", "sarif":
	default:
		fmt.Fprintf(stderr, "ebpfc lint: unknown --format %q: want text, json or sarif\n", *format)
		return exitUsage
	}
	if *budget <= 0 {
		fmt.Fprintf(stderr, "ebpfc lint: --verifier-budget must be positive, got %d\n", *budget)
		return exitUsage
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "ebpfc lint: %s is not a directory\n", dir)
		return exitUsage
	}
	findings, err := lint.Dir(dir, lint.Options{VerifierBudget: *budget})
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc lint: internal error: %v\n", err)
		return exitInternal
	}
	switch *format {
	case "json":
		err = lint.WriteJSON(stdout, findings)
	case "sarif":
		err = lint.WriteSARIF(stdout, findings, lint.SARIFOptions{ToolVersion: toolVersion(), Root: dir})
	default:
		err = lint.WriteText(stdout, findings)
		if err == nil {
			c := lint.Counts(findings)
			_, err = fmt.Fprintf(stdout, "%s: %s, %s, %d info\n", plural(len(findings), "finding"), plural(c[lint.Error], "error"), plural(c[lint.Warning], "warning"), c[lint.Info])
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc lint: writing findings: %v\n", err)
		return exitInternal
	}
	if lint.HasErrors(findings) {
		return exitConfig
	}
	return exitOK
}

// toolVersion is the version 'ebpfc version' prints, without the
// libraries.
func toolVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
