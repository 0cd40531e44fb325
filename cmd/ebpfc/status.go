package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ebpfc/ebpfc/runtime"
)

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "ebpfc status [--socket PATH] [--json]",
		`Shows what the node daemon (ebpfd) runs: the configuration generation and
its source, health and the last error (with its file:line:col), every
program with its attach points, and the fill of every map. Needs root.`, stderr)
	socket := socketFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "ebpfc status: takes no arguments\n")
		return exitUsage
	}
	c, err := runtime.Dial(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc status: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	st, err := c.Status()
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc status: %v\n", err)
		return exitInternal
	}
	if *asJSON {
		return printJSON(stdout, stderr, st)
	}
	printStatus(stdout, st)
	return exitOK
}

func printJSON(stdout, stderr io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc: %v\n", err)
		return exitInternal
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return exitOK
}

func printStatus(w io.Writer, st *runtime.Status) {
	health := "healthy"
	if !st.Healthy {
		health = "unhealthy"
	}
	fmt.Fprintf(w, "node %s: generation %d, %s\n", st.Node, st.Generation, health)
	fmt.Fprintf(w, "  source:  %s\n", st.Source)
	if !st.LastApply.IsZero() {
		fmt.Fprintf(w, "  applied: %s\n", st.LastApply.Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintf(w, "  pins:    %s\n  tc:      %s\n  events:  %s\n", st.PinDir, st.TCMode, st.Events)
	if e := st.LastError; e != nil {
		fmt.Fprintf(w, "  last error at %s (%s): %s\n", e.Time.Format("15:04:05"), e.Source, e.Message)
		for _, l := range e.Errors {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	fmt.Fprintf(w, "programs (%d):\n", len(st.Programs))
	for _, p := range st.Programs {
		var where []string
		for _, a := range p.Attach {
			s := a.Hook + " " + a.Target
			if a.Direction != "" {
				s += " " + a.Direction
			}
			if a.Pending {
				s += " (waiting for the device)"
			} else {
				s += " (" + a.Mode + ")"
			}
			where = append(where, s)
		}
		if p.TailCallSlot != nil {
			where = append(where, fmt.Sprintf("tail-call slot %d", *p.TailCallSlot))
		}
		sha := p.SHA256
		if len(sha) > 12 {
			sha = sha[:12]
		}
		fmt.Fprintf(w, "  %-36s %s  %s\n", p.Name, sha, strings.Join(where, ", "))
	}
	fmt.Fprintf(w, "maps (%d):\n", len(st.Maps))
	for _, m := range st.Maps {
		fill := "-"
		if m.Entries >= 0 {
			fill = fmt.Sprintf("%d/%d", m.Entries, m.MaxEntries)
		}
		sync := ""
		if m.Sync {
			sync = "  sync"
		}
		fmt.Fprintf(w, "  %-36s %-13s %s%s\n", m.Name, m.Type, fill, sync)
	}
}
