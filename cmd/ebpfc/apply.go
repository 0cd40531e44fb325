package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfc/ebpfc/runtime"
)

func init() {
	register(command{"apply", "apply a configuration or compiled artifacts through the node daemon", runApply, 50})
	register(command{"status", "show what the node daemon runs", runStatus, 51})
	register(command{"monitor", "stream verdict and drop events from the node daemon", runMonitor, 52})
}

// socketFlag is the control socket flag every daemon client takes.
func socketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", runtime.DefaultSocket, "the node daemon's control socket")
}

func runApply(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("apply", "ebpfc apply DIR|OUT [--socket PATH] [--json]",
		`Asks the node daemon (ebpfd) to apply a configuration directory, which it
compiles for its node, or compiled artifacts (OUT/NODE, or OUT holding the
daemon's node). The daemon validates, compiles and loads everything before
it changes anything: a configuration with errors, or one the kernel's
verifier rejects, changes nothing and its errors are printed at their
file:line:col. On success it prints what changed: programs loaded and
replaced, and entries added, updated and deleted per map.

The daemon reads DIR itself, so DIR must be on the daemon's host. Needs root.`, stderr)
	socket := socketFlag(fs)
	asJSON := fs.Bool("json", false, "print the daemon's answer as JSON")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "ebpfc apply: want exactly one directory, got %d arguments\n", len(pos))
		return exitUsage
	}
	dir, err := filepath.Abs(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc apply: %v\n", err)
		return exitUsage
	}
	c, err := runtime.Dial(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc apply: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	res, err := c.Apply(dir)
	if err != nil {
		var re *runtime.RequestError
		if errors.As(err, &re) && len(re.Errors) > 0 {
			for _, e := range re.Errors {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "ebpfc apply: %s\n", re.Message)
			return exitConfig
		}
		fmt.Fprintf(stderr, "ebpfc apply: %v\n", err)
		if errors.As(err, &re) {
			return exitConfig
		}
		return exitInternal
	}
	if *asJSON {
		return printJSON(stdout, stderr, res)
	}
	printApply(stdout, res)
	return exitOK
}

func printApply(w io.Writer, res *runtime.ApplyResult) {
	if res.Unchanged {
		fmt.Fprintf(w, "generation %d: unchanged (%s)\n", res.Generation, res.Source)
		return
	}
	us := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	if res.Incremental {
		fmt.Fprintf(w, "generation %d applied from %s (incremental)\n", res.Generation, res.Source)
		fmt.Fprintf(w, "  time: config %v, compute %v, compile %v, kernel %v, total %v\n", us(res.ConfigTime), us(res.ComputeTime), us(res.CompileTime), us(res.KernelTime), us(res.TotalTime))
	} else {
		fmt.Fprintf(w, "generation %d applied from %s\n", res.Generation, res.Source)
		fmt.Fprintf(w, "  time: config %v, compile %v, load %v, sync %v, total %v\n", us(res.ConfigTime), us(res.CompileTime), us(res.LoadTime), us(res.SyncTime), us(res.TotalTime))
	}
	list := func(what string, xs []string) {
		if len(xs) > 0 {
			fmt.Fprintf(w, "  %s (%d): %s\n", what, len(xs), strings.Join(xs, ", "))
		}
	}
	list("programs loaded", res.Loaded)
	list("replaced", res.Replaced)
	list("attached", res.Attached)
	list("detached", res.Detached)
	list("waiting for their device", res.Pending)
	for _, m := range res.Maps {
		var note string
		switch {
		case m.Removed:
			note = " (removed)"
		case m.Created:
			note = " (created)"
		}
		fmt.Fprintf(w, "  map %-24s +%d ~%d -%d in %d ops%s\n", m.Name, m.Added, m.Updated, m.Deleted, m.Ops, note)
	}
}
