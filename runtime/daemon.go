//go:build linux

package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Options configure a Daemon.
type Options struct {
	// Node is the node whose datapath the daemon runs.
	Node string
	// ConfigDir, when set, is compiled for Node and watched for changes.
	ConfigDir string
	// ArtifactsDir, when set instead, holds compiled artifacts (OUT/NODE or
	// OUT); it is watched for changes too.
	ArtifactsDir string
	// PinDir holds the daemon's pins; default DefaultPinRoot/Node.
	PinDir string
	// Cgroup is the cgroup-v2 directory cgroup hooks attach to; default
	// /sys/fs/cgroup/unified.
	Cgroup string
	// PollInterval is how often the watched directory is checked; 0 means
	// one second, a negative value turns watching off.
	PollInterval time.Duration
	// TCMode is TCModeAuto (TCX where the kernel has it, else clsact and
	// cls_bpf), TCModeTCX or TCModeLegacy.
	TCMode string
	// Socket, when set, is the control socket's path.
	Socket string
	// Logger receives the daemon's logs; default discards them.
	Logger *slog.Logger
}

// DefaultCgroup is where cgroup hooks attach unless told otherwise.
const DefaultCgroup = "/sys/fs/cgroup/unified"

// Daemon runs one node's datapath: it loads and attaches programs, keeps
// the configuration's maps in sync, and reports events and metrics. Stop
// leaves the datapath running; a new Daemon on the same pin directory adopts
// it.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	at     *attacher
	writer mapWriter

	// mu serialises applies and guards the fields below.
	mu       sync.Mutex
	state    *pinState
	maps     map[string]*ebpf.Map // handles on the running datapath's maps
	manifest *compiler.Manifest   // of the running datapath; nil until the first apply
	// running is the kernel tag of the program each attachment runs, and
	// slotTags that of each program array slot, as last seen or set.
	running     map[string]string
	slotTags    map[string]map[int]string
	lastDesired map[string]entrySet
	pending     map[string]pendingAttach
	// inc is the configuration of the running datapath, for the
	// incremental path (incremental.go); nil after artifacts or a failure.
	// journal holds the incremental applies since the state was written.
	inc     *incState
	journal []stateDelta
	// configs caches the CUE evaluation of the last configuration loaded:
	// a change to the JSON inventories alone does not evaluate the CUE
	// files again.
	configs load.Cache
	// retired holds maps replaced by new ones until no attached program
	// uses them (see reconcile).
	retired    []*ebpf.Map
	qdiscs     map[string]bool
	lastApply  time.Time
	lastResult *ApplyResult
	lastErr    *ApplyError
	applies    int
	failures   int

	events *eventHub

	stop     chan struct{}
	wg       sync.WaitGroup
	listener net.Listener
	started  bool
}

// New checks opts and returns a daemon that has not started.
func New(opts Options) (*Daemon, error) {
	if opts.Node == "" {
		return nil, errors.New("no node: set the node whose datapath to run")
	}
	if opts.ConfigDir != "" && opts.ArtifactsDir != "" {
		return nil, errors.New("give a configuration directory or artifacts, not both")
	}
	if opts.PinDir == "" {
		opts.PinDir = filepath.Join(DefaultPinRoot, opts.Node)
	}
	if opts.Cgroup == "" {
		opts.Cgroup = DefaultCgroup
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	switch opts.TCMode {
	case "":
		opts.TCMode = TCModeAuto
	case TCModeAuto, TCModeTCX, TCModeLegacy:
	default:
		return nil, fmt.Errorf("tc mode %q: want auto, tcx or legacy", opts.TCMode)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		opts:        opts,
		log:         log.With("node", opts.Node),
		writer:      mapWriter{noBatch: make(map[ebpf.MapType]bool)},
		maps:        make(map[string]*ebpf.Map),
		running:     make(map[string]string),
		slotTags:    make(map[string]map[int]string),
		lastDesired: make(map[string]entrySet),
		pending:     make(map[string]pendingAttach),
		qdiscs:      make(map[string]bool),
		stop:        make(chan struct{}),
	}
	d.events = newEventHub(d.log)
	d.at = &attacher{pinDir: opts.PinDir, cgroup: opts.Cgroup, tcMode: opts.TCMode, createdQdisc: d.recordQdisc}
	return d, nil
}

func (d *Daemon) recordQdisc(dev string) {
	d.qdiscs[dev] = true
	if !slices.Contains(d.state.Qdiscs, dev) {
		d.state.Qdiscs = append(d.state.Qdiscs, dev)
	}
}

// Start adopts what a previous daemon left pinned, applies the configured
// source (an error there is logged and kept in the status: the adopted
// datapath keeps running) and starts watching, serving the control socket
// and reading events.
func (d *Daemon) Start() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	raiseFileLimit()
	if err := mountBPFFS(d.opts.PinDir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.opts.PinDir, 0o700); err != nil {
		return fmt.Errorf("creating the pin directory: %w", err)
	}
	if d.opts.Socket != "" {
		l, err := listenControl(d.opts.Socket)
		if err != nil {
			return err
		}
		d.listener = l
	}
	d.mu.Lock()
	err := d.adopt()
	d.mu.Unlock()
	if err != nil {
		if d.listener != nil {
			d.listener.Close()
		}
		return err
	}
	d.started = true
	src := d.source()
	if src != "" {
		if _, err := d.Apply(src); err != nil {
			d.log.Error("initial apply failed; keeping what runs", "source", src, "err", err)
		}
	}
	if src != "" && d.opts.PollInterval > 0 {
		d.wg.Add(1)
		go d.watch(src)
	}
	if d.listener != nil {
		d.wg.Add(1)
		go d.serve()
	}
	return nil
}

// raiseFileLimit lifts the limit on open files as far as the kernel lets
// root: loading a node's datapath holds a descriptor for every program and
// map at once (three programs and a policy map per endpoint).
func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	want := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = n
		}
	}
	if lim.Max < want && unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}) == nil {
		return
	}
	lim.Cur = lim.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
}

func (d *Daemon) source() string {
	if d.opts.ConfigDir != "" {
		return d.opts.ConfigDir
	}
	return d.opts.ArtifactsDir
}

// Stop stops watching, serving and reading events. The datapath stays
// attached and pinned.
func (d *Daemon) Stop() {
	select {
	case <-d.stop:
		return
	default:
	}
	close(d.stop)
	if d.listener != nil {
		d.listener.Close()
	}
	d.events.close()
	d.wg.Wait()
	if d.listener != nil {
		os.Remove(d.opts.Socket)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.maps {
		m.Close()
	}
	d.maps = map[string]*ebpf.Map{}
	for _, m := range d.retired {
		m.Close()
	}
	d.retired = nil
	d.pending = map[string]pendingAttach{} // their pins go with the next apply
	d.log.Info("stopped; the datapath stays attached", "pins", d.opts.PinDir)
}

// ConfigError is a configuration that failed to compile; Errors holds one
// file:line:col message per problem.
type ConfigError struct {
	Source string
	Errors []string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: %d error(s) in the configuration:\n%s", e.Source, len(e.Errors), strings.Join(e.Errors, "\n"))
}

// resolve reads the artifacts path holds, or loads the configuration it
// holds (cfg, and the time that took).
func (d *Daemon) resolve(path string) (a *Artifacts, cfg *model.Config, loadTime time.Duration, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, 0, err
	}
	if !st.IsDir() {
		return nil, nil, 0, fmt.Errorf("%s is not a directory", path)
	}
	if exists(filepath.Join(path, compiler.ManifestFile)) {
		a, err := ReadArtifacts(path)
		return a, nil, 0, err
	}
	if exists(filepath.Join(path, d.opts.Node, compiler.ManifestFile)) {
		a, err := ReadArtifacts(filepath.Join(path, d.opts.Node))
		return a, nil, 0, err
	}
	if dirs, err := NodeDirs(path); err == nil {
		var nodes []string
		for _, dir := range dirs {
			nodes = append(nodes, filepath.Base(dir))
		}
		return nil, nil, 0, fmt.Errorf("%s holds artifacts for nodes %s but not for %s", path, strings.Join(nodes, ", "), d.opts.Node)
	}
	start := time.Now()
	cfg, err = d.configs.Load(path)
	if err != nil {
		return nil, nil, 0, configError(path, err)
	}
	if errs := lower.Supported(cfg); len(errs) > 0 {
		return nil, nil, 0, configError(path, errs)
	}
	return nil, cfg, time.Since(start), nil
}

// compileConfig compiles cfg, loaded from path, for the node.
func (d *Daemon) compileConfig(path string, cfg *model.Config) (*Artifacts, time.Duration, error) {
	start := time.Now()
	arts, err := compiler.Compile(cfg, compiler.Options{Node: d.opts.Node})
	if err != nil {
		return nil, 0, configError(path, err)
	}
	if len(arts) != 1 {
		return nil, 0, fmt.Errorf("compiling %s gave %d nodes, want 1", path, len(arts))
	}
	a, err := ParseArtifacts(path, arts[0].Files)
	return a, time.Since(start), err
}

// configError words an error of loading or compiling the configuration at
// path: a ConfigError with one file:line:col message per problem.
func configError(path string, err error) error {
	if errs, ok := source.AsErrors(err); ok {
		ce := &ConfigError{Source: path}
		for _, e := range errs {
			ce.Errors = append(ce.Errors, e.Error())
		}
		return ce
	}
	return fmt.Errorf("compiling %s: %w", path, err)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Apply compiles (or reads) path and makes the kernel run it. On any error
// nothing that runs changes, except where the returned error says the
// apply failed half-way (a kernel operation failing after the load), which
// the next apply repairs.
//
// A configuration that differs from the running one only by endpoints
// added takes the incremental path (incremental.go): only the new entries
// and programs are computed, compiled and loaded.
func (d *Daemon) Apply(path string) (*ApplyResult, error) {
	a, cfg, configTime, err := d.resolve(path)
	if err != nil {
		d.recordError(path, err)
		return nil, err
	}
	if cfg == nil {
		return d.apply(a, path, nil, 0, 0)
	}
	if res, done, err := d.tryIncremental(path, cfg, configTime); done {
		return res, err
	}
	a, compileTime, err := d.compileConfig(path, cfg)
	if err != nil {
		d.recordError(path, err)
		return nil, err
	}
	res, err := d.apply(a, path, cfg, configTime, compileTime)
	// Compiling a large node takes gigabytes that are garbage now: give
	// them back rather than keep them resident.
	debug.FreeOSMemory()
	return res, err
}

// ApplyArtifacts makes the kernel run a; source names it in logs and status.
func (d *Daemon) ApplyArtifacts(a *Artifacts, source string) (*ApplyResult, error) {
	return d.apply(a, source, nil, 0, 0)
}

// tryIncremental applies cfg through the incremental path when it can;
// done is false when the full path must apply it.
func (d *Daemon) tryIncremental(path string, cfg *model.Config, configTime time.Duration) (*ApplyResult, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return nil, true, errors.New("the daemon has not started")
	}
	res, ok, err := d.applyIncremental(path, cfg, configTime)
	if !ok {
		return nil, false, nil
	}
	d.applies++
	if err != nil {
		d.recordErrorLocked(path, err)
		return res, true, err
	}
	d.applied(res)
	return res, true, nil
}

func (d *Daemon) apply(a *Artifacts, source string, cfg *model.Config, configTime, compileTime time.Duration) (*ApplyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return nil, errors.New("the daemon has not started")
	}
	d.inc = nil
	res, err := d.reconcile(a, source)
	if res != nil {
		res.ConfigTime, res.CompileTime = configTime, compileTime
		res.TotalTime += configTime + compileTime
	}
	d.applies++
	if err != nil {
		d.recordErrorLocked(source, err)
		return res, err
	}
	d.manifest = a.Manifest
	d.events.update(a, d.maps[EventsMap])
	if cfg != nil {
		d.rememberConfig(source, cfg)
	}
	d.applied(res)
	return res, nil
}

// applied records and logs a successful apply. It holds d.mu.
func (d *Daemon) applied(res *ApplyResult) {
	source := res.Source
	d.lastApply = time.Now()
	d.lastResult = res
	d.lastErr = nil
	attrs := []any{"source", source, "generation", res.Generation, "unchanged", res.Unchanged, "incremental", res.Incremental,
		"config", res.ConfigTime, "compute", res.ComputeTime, "compile", res.CompileTime, "load", res.LoadTime, "sync", res.SyncTime, "total", res.TotalTime,
		"loaded", len(res.Loaded), "replaced", len(res.Replaced), "attached", len(res.Attached), "detached", len(res.Detached)}
	if n := len(res.Pending); n > 0 {
		attrs = append(attrs, "waiting", n, "firstWaiting", res.Pending[0])
	}
	d.log.Info("applied", attrs...)
	for _, c := range res.Maps {
		if c.Changed() {
			d.log.Info("map synced", "map", c.Name, "added", c.Added, "updated", c.Updated, "deleted", c.Deleted, "ops", c.Ops, "created", c.Created, "removed", c.Removed)
		}
	}
}

func (d *Daemon) recordError(source string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies++
	d.recordErrorLocked(source, err)
}

func (d *Daemon) recordErrorLocked(source string, err error) {
	d.failures++
	ae := &ApplyError{Time: time.Now(), Source: source, Message: err.Error()}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		// The kernel may have changed half-way: the next apply takes the
		// full path, which reads the kernel back.
		d.inc = nil
	}
	if errors.As(err, &ce) {
		ae.Message = fmt.Sprintf("%d error(s) in the configuration %s; the running datapath is unchanged", len(ce.Errors), ce.Source)
		ae.Errors = ce.Errors
	}
	d.lastErr = ae
	d.log.Error("apply failed; the last good datapath keeps running", "source", source, "err", err)
}

// watch polls the source for changes and applies them; it also retries
// attachments that wait for their device.
func (d *Daemon) watch(src string) {
	defer d.wg.Done()
	last := fingerprint(src, d.opts.Node)
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		d.retryPending()
		d.mu.Unlock()
		fp := fingerprint(src, d.opts.Node)
		if fp == last {
			continue
		}
		last = fp
		d.log.Info("change detected", "source", src)
		d.Apply(src) // errors are logged and kept in the status
	}
}

// fingerprint summarises the names, sizes and modification times of the
// files a source consists of.
func fingerprint(dir, node string) string {
	var b strings.Builder
	for _, d := range []string{dir, filepath.Join(dir, node)} {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			fmt.Fprintf(&b, "%s/%s %d %d %v\n", d, e.Name(), info.Size(), info.ModTime().UnixNano(), info.Mode()&fs.ModeType)
		}
	}
	return b.String()
}

// Status returns the daemon's view of its node.
func (d *Daemon) Status() *Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &Status{
		Node:       d.opts.Node,
		PinDir:     d.opts.PinDir,
		Generation: d.state.Generation,
		Source:     d.state.Source,
		LastApply:  d.lastApply,
		LastError:  d.lastErr,
		LastResult: d.lastResult,
		TCMode:     d.at.tcMode,
		Events:     d.events.describe(),
	}
	st.Healthy = d.lastErr == nil && len(d.pending) == 0 && d.state.Generation > 0
	byProg := make(map[string][]AttachStatus)
	for _, rec := range d.state.Attachments {
		byProg[rec.Program] = append(byProg[rec.Program], AttachStatus{Hook: rec.Hook, Target: rec.Target, Direction: rec.Direction, Mode: rec.Mode})
	}
	for _, pa := range d.pending {
		byProg[pa.rec.Program] = append(byProg[pa.rec.Program], AttachStatus{Hook: pa.rec.Hook, Target: pa.rec.Target, Direction: pa.rec.Direction, Mode: "", Pending: true})
	}
	names := sortedKeys(d.state.Programs)
	if d.manifest != nil {
		names = nil
		for _, p := range d.manifest.Programs {
			names = append(names, p.Name)
		}
	}
	for _, name := range names {
		pr := d.state.Programs[name]
		st.Programs = append(st.Programs, ProgramStatus{Name: name, SHA256: pr.SHA256, Tag: pr.Tag, TailCallSlot: pr.TailCallSlot, Attach: byProg[name]})
	}
	for _, name := range sortedKeys(d.maps) {
		m := d.maps[name]
		ms := MapStatus{Name: name, Type: d.state.Maps[name].Type, MaxEntries: m.MaxEntries(), Sync: d.state.Maps[name].Sync, Entries: -1}
		ms.Entries = countEntries(m)
		st.Maps = append(st.Maps, ms)
	}
	return st
}

// countEntries counts a hash or trie map's entries; it returns -1 for
// arrays and ring buffers, whose fill is not a number of entries.
func countEntries(m *ebpf.Map) int {
	switch m.Type() {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.LPMTrie:
	default:
		return -1
	}
	n := 0
	var key any // nil asks for the first key
	for {
		var next []byte
		if err := m.NextKey(key, &next); err != nil {
			return n
		}
		n++
		key = next
	}
}

// Subscribe returns a channel of the events that pass filter, and a
// function that ends the subscription. Events are dropped for a subscriber
// that does not keep up.
func (d *Daemon) Subscribe(filter EventFilter) (<-chan Event, func()) {
	return d.events.subscribe(filter)
}
