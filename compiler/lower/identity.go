package lower

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// The reserved identities, numbered as Cilium numbers them. "cluster" and
// "all" are entities — sets of identities — not identities of their own.
const (
	IdentityAny           = 0 // the wildcard identity in policy keys
	IdentityHost          = 1
	IdentityWorld         = 2
	IdentityUnmanaged     = 3
	IdentityRemoteNode    = 6
	IdentityKubeAPIServer = 7
	IdentityWorldIPv4     = 9
	IdentityWorldIPv6     = 10

	// IdentityEndpointBase..IdentityCIDRBase-1 are the identities of
	// endpoint label sets.
	IdentityEndpointBase = 256
	// IdentityCIDRBase is the first identity given to a CIDR prefix. Like
	// Cilium's local identities these have bit 24 set and never leave the
	// node.
	IdentityCIDRBase = 1 << 24
)

// class is what kind of peer an identity stands for (docs/policy.md, "Who
// is the peer").
type class uint8

const (
	classEndpoint class = iota
	classHost
	classRemoteNode
	classAPIServer
	classUnmanaged
	classWorld
)

// identity is one numeric identity with what the compiler knows of it.
type identity struct {
	id        uint32
	name      string
	class     class
	namespace string            // endpoint identities
	setKey    string            // endpoint identities: identityKey: namespace, labels, named ports
	labels    map[string]string // endpoint identities
	nsLabels  map[string]string // labels of the namespace, for namespaceSelector
	prefix    netip.Prefix      // CIDR identities
	endpoints []*model.Endpoint // endpoints with this identity, in config order
}

// identities is the numbering of a whole config. It does not depend on the
// node it is built for, so a number means the same peer everywhere.
type identities struct {
	all        []*identity // sorted by id
	byEndpoint map[*model.Endpoint]*identity
	byID       map[uint32]*identity
	bySet      map[string]*identity // endpoint identities by labelSetKey
	prefixes   []*identity          // CIDR identities, by prefix
	apiServer  []netip.Addr
}

// allocateIdentities numbers every identity of cfg.
//
// Endpoints with the same namespace and labels share an identity, as in
// Cilium. Its number is a hash of the label set in [256, 1<<24): a label set
// gets the same number on every node and every run, and adding an endpoint
// does not renumber the others. Collisions are resolved by probing upwards
// in the order of the label sets' canonical strings.
//
// Every CIDR prefix a policy names (CIDRs and their excepts) and every pod
// CIDR gets a CIDR identity, numbered in prefix order from 1<<24. The
// ipcache maps each prefix to its identity, so the longest-prefix match of an
// address gives the most specific prefix that contains it; a CIDR peer then
// selects the identities of every prefix inside it that is not inside one of
// its excepts.
func allocateIdentities(cfg *model.Config) *identities {
	ids := &identities{byEndpoint: make(map[*model.Endpoint]*identity), apiServer: cfg.Cluster.APIServer}
	nsLabels := make(map[string]map[string]string)
	for _, n := range cfg.Namespaces {
		nsLabels[n.Name] = n.Labels
	}
	bySet := make(map[string]*identity)
	var sets []string
	for _, ep := range cfg.Endpoints {
		key := identityKey(ep)
		id := bySet[key]
		if id == nil {
			nl := nsLabels[ep.Namespace]
			if nl == nil {
				nl = map[string]string{"kubernetes.io/metadata.name": ep.Namespace}
			}
			id = &identity{class: classEndpoint, namespace: ep.Namespace, setKey: key, labels: ep.Labels, nsLabels: nl, name: "endpoint:" + key}
			bySet[key] = id
			sets = append(sets, key)
		}
		id.endpoints = append(id.endpoints, ep)
		ids.byEndpoint[ep] = id
	}
	slices.SortFunc(sets, func(a, b string) int {
		return cmp.Or(cmp.Compare(hashSlot(a), hashSlot(b)), strings.Compare(a, b))
	})
	taken := make(map[uint32]bool)
	for _, key := range sets {
		n := hashSlot(key)
		for taken[n] {
			n++
			if n == IdentityCIDRBase {
				n = IdentityEndpointBase
			}
		}
		taken[n] = true
		bySet[key].id = n
		ids.all = append(ids.all, bySet[key])
	}

	seen := make(map[netip.Prefix]bool)
	var prefixes []netip.Prefix
	add := func(p netip.Prefix) {
		p = p.Masked()
		if p.Bits() == 0 || seen[p] {
			return // the whole address space is world-ipv4 or world-ipv6
		}
		seen[p] = true
		prefixes = append(prefixes, p)
	}
	for _, p := range cfg.Policies {
		for _, r := range slices.Concat(p.Ingress, p.Egress, p.IngressDeny, p.EgressDeny) {
			for _, c := range r.CIDRs {
				add(c.CIDR)
				for _, ex := range c.Except {
					add(ex)
				}
			}
		}
	}
	for _, p := range cfg.Cluster.PodCIDRs {
		add(p)
	}
	slices.SortFunc(prefixes, comparePrefix)
	for i, pfx := range prefixes {
		c := classWorld
		for _, pod := range cfg.Cluster.PodCIDRs {
			if within(pfx, pod.Masked()) {
				c = classUnmanaged
			}
		}
		id := &identity{id: IdentityCIDRBase + uint32(i), name: "cidr:" + pfx.String(), class: c, prefix: pfx}
		ids.prefixes = append(ids.prefixes, id)
		ids.all = append(ids.all, id)
	}
	slices.SortFunc(ids.all, func(a, b *identity) int { return cmp.Compare(a.id, b.id) })
	ids.byID = make(map[uint32]*identity, len(ids.all))
	for _, id := range ids.all {
		ids.byID[id.id] = id
	}
	ids.bySet = bySet
	return ids
}

// labelSetKey is the canonical string of an endpoint's identity labels.
func labelSetKey(ns string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(ns)
	for _, k := range keys {
		b.WriteByte(';')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
	}
	return b.String()
}

// identityKey is the canonical string of what gives an endpoint its
// identity: its namespace and labels and, when it names ports, those names.
// Endpoints that share labels but resolve a port name differently get
// different identities, so that an egress rule naming a port, whose policy
// key holds the destination's identity, allows exactly the port each
// destination endpoint gives that name (Kubernetes resolves named ports per
// destination pod).
func identityKey(ep *model.Endpoint) string {
	key := labelSetKey(ep.Namespace, ep.Labels)
	if len(ep.NamedPorts) == 0 {
		return key
	}
	ports := make([]string, 0, len(ep.NamedPorts))
	for _, np := range ep.NamedPorts {
		ports = append(ports, fmt.Sprintf("%s/%s=%d", np.Name, np.Protocol, np.Port))
	}
	slices.Sort(ports)
	return key + "|ports:" + strings.Join(slices.Compact(ports), ",")
}

// hashSlot is the preferred identity of a label set.
func hashSlot(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return IdentityEndpointBase + h.Sum32()%(IdentityCIDRBase-IdentityEndpointBase)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// within reports whether inner lies entirely inside outer (of one family).
func within(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// reservedIdentities lists the reserved identities for the manifest.
var reservedIdentities = []Identity{
	{ID: IdentityHost, Name: "reserved:host"},
	{ID: IdentityWorld, Name: "reserved:world"},
	{ID: IdentityUnmanaged, Name: "reserved:unmanaged"},
	{ID: IdentityRemoteNode, Name: "reserved:remote-node"},
	{ID: IdentityKubeAPIServer, Name: "reserved:kube-apiserver"},
	{ID: IdentityWorldIPv4, Name: "reserved:world-ipv4", Prefix: "0.0.0.0/0"},
	{ID: IdentityWorldIPv6, Name: "reserved:world-ipv6", Prefix: "::/0"},
}

// manifestIdentities lists every identity for the manifest.
func (ids *identities) manifestIdentities() []Identity {
	out := slices.Clone(reservedIdentities)
	for _, id := range ids.all {
		m := Identity{ID: id.id, Name: id.name}
		if id.prefix.IsValid() {
			m.Prefix = id.prefix.String()
		}
		out = append(out, m)
	}
	return out
}

// cidrIdentities returns the identities a CIDR peer selects, sorted: the
// world-class prefixes inside it that no except contains, and the
// world-ipv4 or world-ipv6 identity when it is a whole address space.
func (ids *identities) cidrIdentities(c *model.CIDRPeer) []uint32 {
	cidr := c.CIDR.Masked()
	var out []uint32
	if cidr.Bits() == 0 {
		// Addresses outside every named prefix have the world identity
		// of their family; only the whole address space contains them.
		if cidr.Addr().Is4() {
			out = append(out, IdentityWorldIPv4)
		} else {
			out = append(out, IdentityWorldIPv6)
		}
	}
	// ids.prefixes is sorted by address first, so the prefixes inside cidr
	// are a run starting at the first one whose address is not below
	// cidr's.
	first := sort.Search(len(ids.prefixes), func(i int) bool {
		return ids.prefixes[i].prefix.Addr().Compare(cidr.Addr()) >= 0
	})
	for _, id := range ids.prefixes[first:] {
		if !cidr.Contains(id.prefix.Addr()) {
			break
		}
		if id.class != classWorld || !within(id.prefix, cidr) {
			continue
		}
		excluded := false
		for _, ex := range c.Except {
			if within(id.prefix, ex.Masked()) {
				excluded = true
				break
			}
		}
		if !excluded {
			out = append(out, id.id)
		}
	}
	return out
}

// ipcache keys hold every address as IPv6: IPv4 addresses as IPv4-mapped
// (::ffff:a.b.c.d), so one map covers both families. The address is four
// 32-bit big-endian words. A whole address (/32, /128) goes in the ipcache
// hash, keyed by the address alone, so that the programs find endpoints,
// nodes and API servers with one exact lookup whatever the size of the
// ipcache; a shorter prefix goes in the ipcache_cidr LPM trie, keyed by
// prefix length and address, which the programs look up when the hash
// misses. The longest prefix that contains an address is then the same as
// with one trie: a whole address is the longest there is.

// ipcacheEntry returns the map and the entry that give prefix p identity
// id.
func ipcacheEntry(p netip.Prefix, id uint32) (string, Entry) {
	bits := p.Bits()
	a := p.Addr()
	whole := bits == a.BitLen()
	if a.Is4() {
		bits += 96
		a = netip.AddrFrom16(a.As16())
	}
	b := a.As16()
	var words [4]uint64
	for i, x := range b {
		words[i/4] = words[i/4]<<8 | uint64(x)
	}
	if whole {
		return ipcacheMap, Entry{Key: words[:], Value: []uint64{uint64(id)}}
	}
	return ipcacheCIDRMap, Entry{Key: append([]uint64{uint64(bits)}, words[:]...), Value: []uint64{uint64(id)}}
}

// ipcacheContents returns the contents of the ipcache maps (ipcache, then
// ipcache_cidr) that give each prefix of byPrefix its identity.
func ipcacheContents(byPrefix map[netip.Prefix]uint32) []MapContents {
	out := []MapContents{{Map: ipcacheMap, Entries: []Entry{}}, {Map: ipcacheCIDRMap, Entries: []Entry{}}}
	for p, id := range byPrefix {
		m, e := ipcacheEntry(p, id)
		i := 0
		if m == ipcacheCIDRMap {
			i = 1
		}
		out[i].Entries = append(out[i].Entries, e)
	}
	for _, c := range out {
		slices.SortFunc(c.Entries, func(a, b Entry) int { return slices.Compare(a.Key, b.Key) })
	}
	return out
}

// ipcachePrefixes returns the identity of each prefix in the ipcache of
// node (see ipcacheEntries).
func (ids *identities) ipcachePrefixes(cfg *model.Config, node *model.Node) map[netip.Prefix]uint32 {
	// Later additions win: an endpoint's or a node's address has its
	// identity even when a policy names it as a CIDR.
	byPrefix := make(map[netip.Prefix]uint32)
	add := func(p netip.Prefix, id uint32) { byPrefix[p] = id }
	add(netip.MustParsePrefix("::/0"), IdentityWorldIPv6)
	add(netip.MustParsePrefix("0.0.0.0/0"), IdentityWorldIPv4)
	for _, id := range ids.prefixes {
		add(id.prefix, id.id)
	}
	for _, a := range ids.apiServer {
		add(netip.PrefixFrom(a, a.BitLen()), IdentityKubeAPIServer)
	}
	for _, n := range cfg.Nodes {
		id := uint32(IdentityRemoteNode)
		if n == node {
			id = IdentityHost
		}
		for _, a := range n.Addresses {
			add(netip.PrefixFrom(a, a.BitLen()), id)
		}
	}
	for _, ep := range cfg.Endpoints {
		for _, a := range ep.Addresses {
			add(netip.PrefixFrom(a, a.BitLen()), ids.byEndpoint[ep].id)
		}
	}
	return byPrefix
}

// addr4 returns an IPv4 address as a number in network order (the first
// octet most significant); big-endian fields are encoded from it.
func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (id *identity) String() string { return fmt.Sprintf("%d(%s)", id.id, id.name) }
