package policytest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// TextOptions control WriteText.
type TextOptions struct {
	// Verbose shows the steps of every test, not only of failed ones.
	Verbose bool
}

// EngineDescription names the engine of r for people.
func (r *Report) EngineDescription() string {
	s := string(r.Engine)
	switch r.Engine {
	case EngineKernel:
		s += " (BPF_PROG_TEST_RUN)"
	case EngineVM:
		s += " (ebpfc's interpreter)"
	}
	if r.EngineNote != "" {
		s += ", chosen by auto: " + r.EngineNote
	}
	return s
}

// WriteText writes r as a table, one row per test, with the steps of each
// failed test (of every test with Verbose) under its row: for each packet
// the programs it went through, their verdicts and the rule that decided,
// with its CUE position. A test that did not run says why. The last line
// counts the outcomes.
func WriteText(w io.Writer, r *Report, opts TextOptions) error {
	ew := &errWriter{w: w}
	ew.printf("engine: %s\n", r.EngineDescription())
	if len(r.Tests) == 0 {
		ew.printf("no tests to run\n")
		return ew.err
	}
	header := []string{"TEST", "FROM", "TO", "PROTO", "EXPECT", "RESULT"}
	rows := [][]string{header}
	for _, t := range r.Tests {
		rows = append(rows, []string{t.Name, t.From, t.To, protoPort(t), t.Expect, resultWord(t.Status)})
	}
	widths := columnWidths(rows)
	for i, row := range rows {
		ew.printf("%s\n", formatRow(row, widths))
		if i == 0 {
			continue
		}
		t := r.Tests[i-1]
		switch {
		case t.Status == NotRun:
			ew.printf("    %s: not run: %s\n", t.Position, t.Message)
		case t.Status == Fail:
			ew.printf("    %s: %s\n", t.Position, t.Message)
			writeSteps(ew, t)
		case opts.Verbose:
			writeSteps(ew, t)
		}
	}
	ew.printf("%s: %d passed, %d failed, %d not run\n", plural(len(r.Tests), "test"), r.Passed, r.Failed, r.NotRun)
	return ew.err
}

// writeSteps writes each packet of t and the programs it went through,
// aligned across the test.
func writeSteps(ew *errWriter, t Result) {
	var rows [][]string
	for _, p := range t.Packets {
		for _, s := range p.Steps {
			rows = append(rows, []string{s.Node, s.Program, s.Direction + " of " + s.Endpoint, s.Verdict, decisionText(s.Decision)})
		}
	}
	widths := columnWidths(rows)
	i := 0
	for _, p := range t.Packets {
		ew.printf("    %s: %s\n", p.Kind, p.Summary)
		for range p.Steps {
			ew.printf("      %s\n", formatRow(rows[i], widths))
			i++
		}
	}
}

func decisionText(d Decision) string {
	s := d.String()
	if d.Reason != "" && d.Kind != "drop" && d.Kind != "default-deny" && d.Kind != "deny" {
		s += " (drop reason: " + d.Reason + ")"
	}
	if d.Position != "" {
		s += " at " + d.Position
	}
	return s
}

// protoPort shows a test's protocol and port, and IPv6 when its packets
// are IPv6 but its protocol does not say so: "TCP/80", "UDP/53 IPv6",
// "ICMP IPv6", "ICMPv6".
func protoPort(t Result) string {
	s := t.Protocol
	if t.Port != 0 {
		s = fmt.Sprintf("%s/%d", t.Protocol, t.Port)
	}
	if t.Family == "IPv6" && t.Protocol != "ICMPv6" {
		s += " IPv6"
	}
	return s
}

func resultWord(s Status) string {
	if s == Fail {
		return "FAIL"
	}
	return string(s)
}

func columnWidths(rows [][]string) []int {
	var w []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(w) {
				w = append(w, 0)
			}
			w[i] = max(w[i], len(c))
		}
	}
	return w
}

// formatRow pads every cell but the last to its column's width.
func formatRow(row []string, widths []int) string {
	var b strings.Builder
	for i, c := range row {
		if i == len(row)-1 {
			b.WriteString(c)
			break
		}
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", widths[i]-len(c)+2))
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // packets read "a > b"
	return enc.Encode(r)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
