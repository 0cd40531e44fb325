package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"

	"github.com/ebpfc/ebpfc/runtime"
)

func runMonitor(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("monitor", "ebpfc monitor [--json] [--type drop|verdict] [--verdict V] [--endpoint NS/NAME] [--socket PATH]",
		`Streams the datapath's verdict and drop events from the node daemon (ebpfd),
one per line, with the endpoint, the peer's identity, the rule that decided
and its CUE position, until interrupted. Needs root.`, stderr)
	socket := socketFlag(fs)
	asJSON := fs.Bool("json", false, "print each event as a JSON line")
	typ := fs.String("type", "", "only events of this type: drop or verdict")
	verdict := fs.String("verdict", "", "only events with this verdict: allowed, denied or audited")
	endpoint := fs.String("endpoint", "", "only events of this endpoint (namespace/name)")
	count := fs.Int("n", 0, "stop after this many events (0: never)")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "ebpfc monitor: takes no arguments\n")
		return exitUsage
	}
	filter := runtime.EventFilter{Type: *typ, Verdict: *verdict, Endpoint: *endpoint}
	if err := filter.Check(); err != nil {
		fmt.Fprintf(stderr, "ebpfc monitor: %v\n", err)
		return exitUsage
	}
	c, err := runtime.Dial(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc monitor: %v\n", err)
		return exitUsage
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	var interrupted atomic.Bool
	go func() {
		if _, ok := <-sigs; ok {
			interrupted.Store(true)
			c.Close()
		}
	}()
	seen := 0
	enc := json.NewEncoder(stdout)
	err = c.Monitor(filter, func(ev runtime.Event) bool {
		if *asJSON {
			enc.Encode(ev)
		} else {
			fmt.Fprintln(stdout, ev.String())
		}
		seen++
		return *count == 0 || seen < *count
	})
	c.Close()
	if err != nil && !interrupted.Load() {
		fmt.Fprintf(stderr, "ebpfc monitor: %v\n", err)
		return exitInternal
	}
	return exitOK
}
