// Package lower turns a validated model into the IR for one node: the
// programs that enforce policy on the node's endpoints, the maps they share,
// and the initial contents of those maps.
//
// Structure lives in code, membership lives in maps: which endpoints a node
// runs, whether each direction is enforced and each endpoint's address are
// fixed in the code, while the identities of addresses (the ipcache) and the
// per-endpoint policy entries are map contents the runtime can change without
// reloading programs.
package lower

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Attachment says where the runtime attaches a program.
type Attachment struct {
	Program   string `json:"program"`
	Hook      string `json:"hook"`      // "tc" or "xdp"
	Device    string `json:"device"`    // interface name
	Direction string `json:"direction"` // "ingress" or "egress" for tc; "" for xdp
	Endpoint  string `json:"endpoint,omitempty"`
}

// Cookie identifies the rule (or default) that decided a packet's verdict.
// Programs count packets per cookie; the manifest maps each cookie back to
// its policy and CUE position.
type Cookie struct {
	ID        uint32     `json:"cookie"`
	Kind      string     `json:"kind"` // "allow", "deny" or "default-deny"
	Policy    string     `json:"policy,omitempty"`
	Direction string     `json:"direction"`
	Rule      int        `json:"rule"` // index in the policy's rule list, -1 for a default
	Endpoint  string     `json:"endpoint,omitempty"`
	Audit     bool       `json:"audit,omitempty"` // its denials only report
	Pos       source.Pos `json:"-"`
}

// Entry is one map entry, as the values of the key and value fields in the
// order of the map's structs.
type Entry struct {
	Key   []uint64
	Value []uint64
}

// MapContents is the initial contents of one map.
type MapContents struct {
	Map     string
	Entries []Entry // sorted by key
}

// Identity is a numeric security identity and what it stands for.
type Identity struct {
	ID     uint32 `json:"id"`
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// EndpointRef is how events name an endpoint: the index the datapath
// writes into them, the endpoint's namespace/name and its identity.
type EndpointRef struct {
	Index    uint32 `json:"index"`
	ID       string `json:"id"`
	Identity uint32 `json:"identity"`
}

// Result is what lowering produces for one node.
type Result struct {
	Module      *ir.Module
	Attach      []Attachment
	Cookies     []Cookie
	Contents    []MapContents // sorted by map name
	Identities  []Identity
	DropReasons []string // index = reason code
	Endpoints   []EndpointRef
}

// Default map sizes, overridable through settings.mapSizes.
const (
	defaultIPCacheSize = 16384
	defaultPolicySize  = 16384
)

// Supported reports every part of cfg that the lowering does not implement
// yet, each at its position. A config with such parts is rejected as a whole:
// nothing is ever silently ignored.
func Supported(cfg *model.Config) source.Errors {
	var errs source.Errors
	for _, s := range cfg.Services {
		errs.Add(s.Pos, "services are not supported yet (service %s/%s); remove it to compile the rest", s.Namespace, s.Name)
	}
	if cfg.NAT != nil {
		errs.Add(cfg.NAT.Pos, "nat is not supported yet; remove the nat section to compile the rest")
	}
	// Tests do not change what is compiled: ebpfc test runs them against
	// the compiled programs. compiler/load has already checked that they
	// name endpoints and addresses that exist.
	supportedSettings(&errs, &cfg.Settings)
	for _, ep := range cfg.Endpoints {
		if len(ep.HostPorts) > 0 {
			errs.Add(ep.HostPorts[0].Pos, "hostPorts are not supported yet (endpoint %s)", ep.ID())
		}
	}
	errs.Sort()
	return errs
}

// loweredMapSizes are the settings.mapSizes entries that size a map ebpfc
// emits today.
var loweredMapSizes = map[string]bool{"policy": true, "ipcache": true, "conntrack": true}

func supportedSettings(errs *source.Errors, s *model.Settings) {
	var names []string
	for name := range s.MapSizes {
		if !loweredMapSizes[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		errs.Add(s.At("mapSizes."+name), "settings.mapSizes.%s is not supported yet: ebpfc emits no %s map; remove it (policy, ipcache and conntrack can be sized)", name, name)
	}
	if s.MapSizeRatio != 0 {
		errs.Add(s.At("mapSizeRatio"), "settings.mapSizeRatio is not supported yet; size maps with settings.mapSizes.policy, .ipcache and .conntrack")
	}
}

// Node lowers the part of cfg that runs on node. cfg must have passed
// Supported.
func Node(cfg *model.Config, node *model.Node) (*Result, error) {
	l := &lowering{cfg: cfg, node: node}
	for _, ep := range cfg.Endpoints {
		if ep.Node == node.Name {
			l.endpoints = append(l.endpoints, ep)
		}
	}
	l.ids = allocateIdentities(cfg)
	l.sel = newSelectorCache(l.ids)
	l.cookieOf, l.cookies = ruleCookies(cfg)
	l.selectPolicies()
	if err := l.build(); err != nil {
		return nil, err
	}
	return l.result(), nil
}

type lowering struct {
	cfg       *model.Config
	node      *model.Node
	endpoints []*model.Endpoint

	ids       *identities
	sel       *selectorCache
	selecting map[*identity][]*model.Policy // policies selecting each local identity
	cookieOf  map[*model.Rule]uint32
	host      *model.Endpoint // the host's subject when it has programs (host.go)

	// index numbers the node's endpoints and numRuleCookies counts the rule
	// cookies (slots.go). programsOnly makes build lower the programs and
	// maps but not the node's ipcache contents (Incremental).
	index          map[*model.Endpoint]uint32
	numRuleCookies uint32
	programsOnly   bool

	module   *ir.Module
	progs    []*ir.Program
	slots    []string
	maps     []*ir.Map
	contents []MapContents
	attach   []Attachment
	cookies  []Cookie
	consts   []ir.Const
	names    map[string]bool
}

func (l *lowering) result() *Result {
	slices.SortFunc(l.maps, func(a, b *ir.Map) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(l.consts, func(a, b ir.Const) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(l.contents, func(a, b MapContents) int { return strings.Compare(a.Map, b.Map) })
	return &Result{
		Module: &ir.Module{
			Name:     l.node.Name,
			Consts:   l.consts,
			Maps:     l.maps,
			Programs: l.progs,
		},
		Attach:      l.attach,
		Cookies:     l.cookies,
		Contents:    l.contents,
		Identities:  l.ids.manifestIdentities(),
		DropReasons: dropReasonNames[:],
		Endpoints:   append(l.endpointRefs(), l.hostRefs()...),
	}
}

// identifier turns s into a C identifier that is unique in the module, so
// that program and map names are valid BTF names whatever the endpoint is
// called.
func (l *lowering) identifier(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	id := b.String()
	if l.names == nil {
		l.names = make(map[string]bool)
	}
	base := id
	for n := 2; l.names[id]; n++ {
		id = fmt.Sprintf("%s_%d", base, n)
	}
	l.names[id] = true
	return id
}

func (l *lowering) mapSize(name string, def uint32) uint32 {
	if n, ok := l.cfg.Settings.MapSizes[name]; ok && n > 0 {
		return n
	}
	return def
}
