//go:build linux

// Command ebpfd is ebpfc's node daemon: it loads a node's compiled datapath
// (compiling the configuration itself, or reading artifacts compiled in CI),
// attaches it, keeps the configuration's maps in sync as the configuration
// changes, and reports events and metrics. Stopping it leaves the datapath
// running; starting it again adopts what runs.
//
// Exit codes: 0 success, 2 usage errors, 3 runtime errors.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/runtime"
)

const (
	exitOK       = 0
	exitUsage    = 2
	exitInternal = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

const description = `ebpfd runs one node's eBPF datapath. With --config it compiles the
configuration directory for --node and recompiles it when a file changes;
with --artifacts it loads what 'ebpfc compile' wrote (OUT/NODE, or OUT with
--node) and reloads it when it changes. Either way it loads the programs,
pins maps and links under --pin-dir, attaches the programs (tc through TCX or
clsact, XDP, cgroup hooks), keeps the configuration's maps equal to what the
configuration says, and serves 'ebpfc apply', 'ebpfc status' and
'ebpfc monitor' on the control socket (root only).

SIGTERM and SIGINT stop ebpfd and leave the datapath attached; starting it
again adopts what runs. --cleanup detaches and unpins everything ebpfd owns
for the node.`

// run is main without os.Exit; it returns when a signal arrives or stopCh
// (which may be nil) is closed.
func run(args []string, stdout, stderr io.Writer, stopCh <-chan struct{}) int {
	fs := flag.NewFlagSet("ebpfd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ebpfd (--config DIR | --artifacts DIR) --node NAME [flags]\n       ebpfd --cleanup --node NAME [--pin-dir DIR]\n\n%s\n\nFlags:\n", description)
		fs.PrintDefaults()
	}
	var (
		config      = fs.String("config", "", "configuration `directory` to compile and watch")
		artifacts   = fs.String("artifacts", "", "compiled artifacts to load and watch: OUT/NODE, or OUT with --node")
		node        = fs.String("node", "", "the node this daemon runs (required unless --artifacts names one node's directory)")
		pinDir      = fs.String("pin-dir", "", "where maps, links and state are pinned (default "+runtime.DefaultPinRoot+"/NODE)")
		cgroup      = fs.String("cgroup", runtime.DefaultCgroup, "cgroup-v2 directory where cgroup hooks attach")
		poll        = fs.Duration("poll", time.Second, "how often to check the watched directory for changes (0 turns watching off)")
		tcMode      = fs.String("tc-mode", runtime.TCModeAuto, "how tc programs attach: auto (TCX where the kernel has it), tcx, or legacy (clsact + cls_bpf)")
		socket      = fs.String("socket", runtime.DefaultSocket, "control socket path (empty: no socket)")
		metricsAddr = fs.String("metrics-addr", "", "serve Prometheus metrics at this address, e.g. 127.0.0.1:9963 (default off)")
		logFormat   = fs.String("log-format", "text", "log format: text or json")
		logLevel    = fs.String("log-level", "info", "log level: debug, info, warn or error")
		cleanup     = fs.Bool("cleanup", false, "detach and unpin everything ebpfd owns for the node, then exit")
	)
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "ebpfd: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "ebpfd: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(stderr, "ebpfd: --log-format %q: want text or json\n", *logFormat)
		return exitUsage
	}
	log := slog.New(handler)

	artifactsDir := *artifacts
	if artifactsDir != "" && *node == "" {
		// OUT/NODE: the node is the manifest's.
		if b, err := os.ReadFile(filepath.Join(artifactsDir, compiler.ManifestFile)); err == nil {
			var m struct {
				Node string `json:"node"`
			}
			if json.Unmarshal(b, &m) == nil {
				*node = m.Node
			}
		}
	}
	if *node == "" {
		fmt.Fprintf(stderr, "ebpfd: --node is required\n")
		return exitUsage
	}
	if *pinDir == "" {
		*pinDir = filepath.Join(runtime.DefaultPinRoot, *node)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "ebpfd: needs root (loading and attaching BPF programs)\n")
		return exitUsage
	}
	if *cleanup {
		if err := runtime.Cleanup(*pinDir, log); err != nil {
			fmt.Fprintf(stderr, "ebpfd --cleanup: %v\n", err)
			return exitInternal
		}
		return exitOK
	}
	if (*config == "") == (artifactsDir == "") {
		fmt.Fprintf(stderr, "ebpfd: give exactly one of --config and --artifacts\n")
		return exitUsage
	}
	for _, dir := range []*string{config, &artifactsDir} {
		if *dir == "" {
			continue
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfd: %v\n", err)
			return exitUsage
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			fmt.Fprintf(stderr, "ebpfd: %s is not a directory\n", *dir)
			return exitUsage
		}
		*dir = abs
	}
	pollEvery := *poll
	if pollEvery == 0 {
		pollEvery = -1
	}
	d, err := runtime.New(runtime.Options{
		Node: *node, ConfigDir: *config, ArtifactsDir: artifactsDir, PinDir: *pinDir, Cgroup: *cgroup,
		PollInterval: pollEvery, TCMode: *tcMode, Socket: *socket, Logger: log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "ebpfd: %v\n", err)
		return exitUsage
	}
	var srv *http.Server
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(d.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		l, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfd: --metrics-addr: %v\n", err)
			return exitUsage
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		log.Info("serving metrics", "addr", l.Addr().String())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := d.Start(); err != nil {
		fmt.Fprintf(stderr, "ebpfd: %v\n", err)
		return exitInternal
	}
	log.Info("started", "pins", *pinDir, "socket", *socket)
	select {
	case s := <-sigs:
		log.Info("signal; stopping", "signal", s.String())
	case <-stopCh:
	}
	if srv != nil {
		srv.Close()
	}
	d.Stop()
	return exitOK
}
