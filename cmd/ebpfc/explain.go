package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/explain"
	"github.com/ebpfc/ebpfc/compiler/load"
)

func init() {
	register(command{"explain", "show why a packet gets its verdict, rule by rule", runExplain, 55})
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("explain", "ebpfc explain [--node NODE] [--json] [--insns] DIR FLOW",
		`Compiles the configuration in DIR, runs one packet of FLOW through the
programs that see it in ebpfc's interpreter (no kernel) and shows why it
gets its verdict: the programs entered and where they attach, the blocks
run with the CUE lines they came from, the tail calls, every map lookup
with its key and value decoded (identities, protocols and rules by name),
the verdict, the drop reason and the rule that decided, at its CUE
position.

FLOW is one argument (quote it):
  PROTO SRC -> DST [OPTIONS]        PROTO from SRC to DST [OPTIONS]
PROTO is tcp, udp, sctp, icmp or icmpv6. SRC and DST are an address
(10.0.1.5, fd00::1) or an endpoint NAMESPACE/NAME, with :PORT
(10.0.1.5:80, [fd00::1]:80, web/frontend-0:80); tcp, udp and sctp need a
destination port. OPTIONS are TCP flags (syn, ack, fin, rst, psh; syn when
none is given) or, for ICMP, 'type N' and 'code N' (echo request by
default). For example:
  ebpfc explain examples/basic 'tcp 192.168.1.10:40000 -> 10.244.1.10:80 syn'
  ebpfc explain examples/basic 'tcp from web/frontend-0 to db/postgres-0:5432'

A flow between two endpoints is explained on the source's node (its egress
policy), then on the destination's node (its ingress policy, after the
node's XDP program when the packet comes from outside the node), until a
program drops it. --node explains one node's part only.

Exit codes: 0 whatever the verdict, 1 errors in the configuration (each at
file:line:col), 2 usage errors and mistakes in FLOW (at their column), 3
internal errors.`, stderr)
	node := fs.String("node", "", "explain only this node's part of the flow")
	asJSON := fs.Bool("json", false, "print the explanation as one JSON document")
	insns := fs.Bool("insns", false, "list every instruction executed, with its CUE position")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) < 2 {
		fmt.Fprintf(stderr, "ebpfc explain: want a configuration directory and a flow, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "ebpfc explain: %s is not a directory\n", dir)
		return exitUsage
	}
	// A flow written without quotes arrives as several arguments.
	flow, err := explain.ParseFlow(strings.Join(pos[1:], " "))
	if err != nil {
		return reportFlowError(stderr, err)
	}
	cfg, err := load.Load(dir)
	if err != nil {
		return reportError(stderr, "explain", err)
	}
	r, err := explain.Explain(cfg, flow, explain.Options{Node: *node, Insns: *insns})
	if err != nil {
		var fe *explain.FlowError
		if errors.As(err, &fe) {
			return reportFlowError(stderr, err)
		}
		return reportError(stderr, "explain", err)
	}
	if *asJSON {
		err = explain.WriteJSON(stdout, r)
	} else {
		err = explain.WriteText(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc explain: writing the explanation: %v\n", err)
		return exitInternal
	}
	return exitOK
}

// reportFlowError prints a mistake in the flow with a caret under it.
func reportFlowError(stderr io.Writer, err error) int {
	var fe *explain.FlowError
	if !errors.As(err, &fe) {
		fmt.Fprintf(stderr, "ebpfc explain: internal error: %v\n", err)
		return exitInternal
	}
	fmt.Fprintf(stderr, "ebpfc explain: %v\n%s\n", fe, fe.Caret())
	return exitUsage
}
