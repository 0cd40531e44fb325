// Package lint checks a configuration for policy mistakes without a kernel:
// rules that can never decide anything, selectors that select nothing,
// named ports that cannot resolve, traffic left open or opened too widely,
// and maps or programs that would not fit. Every finding has a stable id
// (EBPFC000…), a severity, the file:line:col of the value it is about, a
// message and a hint saying what to do.
//
// The checks follow the policy semantics of docs/policy.md. Checks that
// compare rules (shadowing, deny over allow) are conservative: they report
// a rule only when they can show it is redundant for every endpoint
// inventory, never on a guess. Checks that resolve selectors (selectors
// matching nothing, named ports, open endpoints) use the endpoints and nodes
// of the configuration as written.
//
// Checks are data: the table catalogue describes each with its id,
// severity and help, and runs lists them in the order they run. A
// configuration the front end rejects gets only the findings its load
// errors give.
package lint

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Severity says how much a finding matters. Only errors make the
// configuration fail lint.
type Severity string

// The severities, from most to least serious.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is one problem found in a configuration.
type Finding struct {
	ID       string // the check's id, e.g. "EBPFC001"
	Severity Severity
	Pos      source.Pos // the value the finding is about
	Message  string
	Hint     string    // what to do about it
	Related  []Related // other places the message refers to
}

// Related is another place a finding refers to, such as the rule that
// shadows the one reported.
type Related struct {
	Pos     source.Pos
	Message string
}

// Check describes one check: what it finds and how to fix it.
type Check struct {
	ID       string
	Name     string   // a short kebab-case name
	Severity Severity // of its findings
	Summary  string   // one sentence: what it finds
	Help     string   // how to fix what it finds
}

// DefaultVerifierBudget is the processed-instruction budget per program
// that check EBPFC011 holds programs to, as the design targets for a
// configuration at full scale (the kernel's own limit is 1M).
const DefaultVerifierBudget = 100_000

// Estimator estimates how many instructions the kernel's verifier
// processes when it loads program p of object obj. lowerBound says the
// estimate may be below the real count.
type Estimator func(obj *backend.Object, p *backend.Program) (processed int, lowerBound bool)

// InstructionCount is the simplest Estimator: the kernel's verifier
// processes every instruction of a program that has no dead code at least
// once, so the program's length is a lower bound of its processed count.
func InstructionCount(_ *backend.Object, p *backend.Program) (int, bool) {
	return len(p.Insns), true
}

// Options control a lint run.
type Options struct {
	// VerifierBudget is the most processed instructions a program may
	// need; 0 means DefaultVerifierBudget.
	VerifierBudget int
	// Estimate estimates processed instructions; nil means
	// StaticEstimate().
	Estimate Estimator
}

// Dir loads the configuration in dir and lints it. A configuration the
// front end rejects gives one error finding per load error (EBPFC005 and
// EBPFC006 for the mistakes those checks are about, EBPFC000 for the
// others) and no other findings: the remaining checks need a loaded model.
// The error is non-nil only for problems that are not in the
// configuration (an unreadable directory, a bug).
func Dir(dir string, opts Options) ([]Finding, error) {
	cfg, err := load.Load(dir)
	if err != nil {
		errs, ok := source.AsErrors(err)
		if !ok {
			return nil, err
		}
		return loadFindings(errs), nil
	}
	return Config(cfg, opts)
}

// Config lints a loaded configuration. The error is non-nil only for an
// internal error of the compiler.
func Config(cfg *model.Config, opts Options) ([]Finding, error) {
	if opts.VerifierBudget <= 0 {
		opts.VerifierBudget = DefaultVerifierBudget
	}
	if opts.Estimate == nil {
		opts.Estimate = StaticEstimate()
	}
	l := newLinter(cfg, opts)
	for _, run := range runs {
		if err := run(l); err != nil {
			return nil, err
		}
	}
	return Sort(l.findings), nil
}

// Sort orders findings by position, then id, then message, and removes
// exact duplicates, so that output never depends on the order checks ran.
func Sort(fs []Finding) []Finding {
	slices.SortStableFunc(fs, compareFindings)
	return slices.CompactFunc(fs, func(a, b Finding) bool { return compareFindings(a, b) == 0 })
}

func compareFindings(a, b Finding) int {
	return cmp.Or(a.Pos.Compare(b.Pos), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Message, b.Message))
}

// HasErrors reports whether any finding has severity Error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// catalogue describes every check, in id order. Ids are stable: a check
// that goes away leaves its id unused.
var catalogue = []Check{
	{
		ID: "EBPFC000", Name: "load-error", Severity: Error,
		Summary: "The configuration does not load: a syntax, schema or consistency error.",
		Help:    "Fix the value at the position given; the message says what is wrong. The other checks run once the configuration loads.",
	},
	{
		ID: "EBPFC001", Name: "shadowed-rule", Severity: Warning,
		Summary: "A rule is redundant: another rule of a policy that selects the same endpoints already matches every peer and port it matches.",
		Help:    "Remove the redundant rule, or change it (or the broader rule) if the two were meant to differ.",
	},
	{
		ID: "EBPFC002", Name: "allow-denied", Severity: Warning,
		Summary: "An allow rule never allows anything: every packet it matches is denied by a deny rule of a policy that selects the same endpoints (deny beats allow).",
		Help:    "Remove the allow rule, or narrow the deny rule if the traffic should pass.",
	},
	{
		ID: "EBPFC003", Name: "peer-selects-nothing", Severity: Warning,
		Summary: "A peer endpoint selector (fromEndpoints/toEndpoints) matches no endpoint of the configuration.",
		Help:    "Check the labels and the namespace: a selector in a namespaced policy matches only its own namespace unless it has a namespaceSelector (or the label k8s:io.kubernetes.pod.namespace).",
	},
	{
		ID: "EBPFC004", Name: "policy-selects-nothing", Severity: Warning,
		Summary: "A policy's endpointSelector or nodeSelector matches no endpoint or node, so the policy has no effect.",
		Help:    "Fix the selector's labels or the policy's namespace, or remove the policy.",
	},
	{
		ID: "EBPFC005", Name: "except-outside-cidr", Severity: Error,
		Summary: "A CIDR's except prefix does not lie inside the CIDR, so it excludes nothing.",
		Help:    "Write an except prefix inside the cidr it belongs to, or widen the cidr.",
	},
	{
		ID: "EBPFC006", Name: "bad-port-range", Severity: Error,
		Summary: "A port range is inverted or empty: endPort is below port, has no port to start from, or is used with a named port.",
		Help:    "Write port as the first and endPort as the last port of the range (endPort >= port), with a numeric port.",
	},
	{
		ID: "EBPFC007", Name: "unresolved-named-port", Severity: Warning,
		Summary: "A named port cannot resolve: no destination endpoint the rule applies to has a named port of that name and protocol, so the port entry matches nothing.",
		Help:    "Declare the named port on the destination endpoints (namedPorts), fix the name or protocol, or use a port number.",
	},
	{
		ID: "EBPFC008", Name: "default-open", Severity: Info,
		Summary: "An endpoint is selected by no policy that enforces a direction, so all its traffic in that direction is allowed.",
		Help:    "Select the endpoint with a policy that has rules for the direction (ingress: [{}] alone denies everything), or set settings.enforcement: \"always\".",
	},
	{
		ID: "EBPFC009", Name: "broad-ingress", Severity: Warning,
		Summary: "An ingress rule lets the whole internet (entity world or all, 0.0.0.0/0, ::/0, or a rule with ports but no peers) reach every port.",
		Help:    "List the ports the endpoints serve in toPorts, or narrow the peers.",
	},
	{
		ID: "EBPFC010", Name: "map-capacity", Severity: Error,
		Summary: "A map needs more entries than its size allows: an endpoint's policy map (settings.mapSizes.policy) or a node's ipcache (settings.mapSizes.ipcache).",
		Help:    "Raise the map size in settings.mapSizes, or merge rules and CIDRs so fewer entries are needed.",
	},
	{
		ID: "EBPFC011", Name: "verifier-budget", Severity: Error,
		Summary: "A program's estimated processed-instruction count for the kernel's verifier is above the budget (--verifier-budget, default 100000).",
		Help:    "Split the policy of the endpoint over fewer rules or ports, or raise the budget if the kernel in use accepts the program.",
	},
	{
		ID: "EBPFC012", Name: "compile-error", Severity: Error,
		Summary: "ebpfc compile rejects the configuration, typically for a feature that is not lowered yet.",
		Help:    "Change or remove the value at the position given, as the message says. Map capacity and verifier budget are checked once the configuration compiles.",
	},
}

// Checks returns every check, in id order.
func Checks() []Check { return slices.Clone(catalogue) }

// runs lists the checks' functions in the order they run. EBPFC000 comes
// from load errors; EBPFC010 also reports EBPFC011 and EBPFC012, which all
// come from compiling. checkCompiled stays last: the benchmark runs the
// model checks alone as every entry but the last.
var runs = []func(*linter) error{
	(*linter).checkShadowedRules,  // EBPFC001
	(*linter).checkDeniedAllows,   // EBPFC002
	(*linter).checkPeerSelectors,  // EBPFC003
	(*linter).checkPolicySubjects, // EBPFC004
	(*linter).checkExcepts,        // EBPFC005
	(*linter).checkPortRanges,     // EBPFC006
	(*linter).checkNamedPorts,     // EBPFC007
	(*linter).checkDefaultOpen,    // EBPFC008
	(*linter).checkBroadIngress,   // EBPFC009
	(*linter).checkCompiled,       // EBPFC010, EBPFC011, EBPFC012
}

func checkByID(id string) Check {
	for _, c := range catalogue {
		if c.ID == id {
			return c
		}
	}
	panic("lint: unknown check " + id)
}

// linter holds what the checks share: the configuration, lookups built
// from it, and the findings so far.
type linter struct {
	cfg      *model.Config
	opts     Options
	nsLabels map[string]map[string]string
	findings []Finding
}

func newLinter(cfg *model.Config, opts Options) *linter {
	l := &linter{cfg: cfg, opts: opts, nsLabels: map[string]map[string]string{}}
	for _, ns := range cfg.Namespaces {
		l.nsLabels[ns.Name] = ns.Labels
	}
	return l
}

// report adds a finding of check id at pos, with the check's severity.
func (l *linter) report(id string, pos source.Pos, hint string, related []Related, format string, args ...any) {
	l.reportAs(id, checkByID(id).Severity, pos, hint, related, format, args...)
}

func (l *linter) reportAs(id string, sev Severity, pos source.Pos, hint string, related []Related, format string, args ...any) {
	if hint == "" {
		hint = checkByID(id).Help
	}
	l.findings = append(l.findings, Finding{
		ID: id, Severity: sev, Pos: pos, Message: fmt.Sprintf(format, args...), Hint: hint, Related: related,
	})
}

// namespaceLabels returns the labels of namespace ns; every namespace
// carries kubernetes.io/metadata.name, also one the configuration only
// implies.
func (l *linter) namespaceLabels(ns string) map[string]string {
	if labels, ok := l.nsLabels[ns]; ok {
		return labels
	}
	return map[string]string{namespaceNameLabel: ns}
}

const namespaceNameLabel = "kubernetes.io/metadata.name"
