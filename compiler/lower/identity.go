package lower

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// allocateIdentities gives every CIDR prefix that a policy names (the CIDRs
// and their excepts) its own identity, as Cilium does. The ipcache maps each
// prefix to its identity and 0.0.0.0/0 to world, so the longest-prefix match
// of an address gives the most specific prefix that contains it; a CIDR peer
// then selects the identities of every prefix inside it that is not inside
// one of its excepts.
//
// Prefixes are numbered in sorted order, so the same config gives the same
// numbers on every node and every run.
func (l *lowering) allocateIdentities() {
	seen := make(map[netip.Prefix]bool)
	for _, p := range l.cfg.Policies {
		for _, r := range slices.Concat(p.Ingress, p.Egress) {
			for _, c := range r.CIDRs {
				for _, pfx := range append([]netip.Prefix{c.CIDR}, c.Except...) {
					pfx = pfx.Masked()
					if pfx.Bits() == 0 || !pfx.Addr().Is4() {
						continue // 0.0.0.0/0 is world
					}
					seen[pfx] = true
				}
			}
		}
	}
	for pfx := range seen {
		l.prefixes = append(l.prefixes, pfx)
	}
	slices.SortFunc(l.prefixes, comparePrefix)
	l.identities = []Identity{
		{ID: IdentityHost, Name: "reserved:host"},
		{ID: IdentityWorld, Name: "reserved:world", Prefix: "0.0.0.0/0"},
	}
	for i, pfx := range l.prefixes {
		l.identities = append(l.identities, Identity{
			ID:     IdentityCIDRBase + uint32(i),
			Name:   fmt.Sprintf("cidr:%s", pfx),
			Prefix: pfx.String(),
		})
	}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// peerIdentities returns the identities a CIDR peer selects, sorted.
func (l *lowering) peerIdentities(c *model.CIDRPeer) []uint32 {
	cidr := c.CIDR.Masked()
	var ids []uint32
	if cidr.Bits() == 0 {
		// Addresses outside every named prefix have the world identity;
		// only the whole address space contains all of them.
		ids = append(ids, IdentityWorld)
	}
	for i, pfx := range l.prefixes {
		if !within(pfx, cidr) {
			continue
		}
		excluded := false
		for _, ex := range c.Except {
			if within(pfx, ex.Masked()) {
				excluded = true
				break
			}
		}
		if !excluded {
			ids = append(ids, IdentityCIDRBase+uint32(i))
		}
	}
	return ids
}

// within reports whether inner lies entirely inside outer.
func within(inner, outer netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// ipcacheEntries returns the ipcache's initial contents: world for the whole
// address space and each CIDR prefix's identity.
func (l *lowering) ipcacheEntries() []Entry {
	entries := []Entry{{Key: []uint64{0, 0}, Value: []uint64{IdentityWorld}}}
	for i, pfx := range l.prefixes {
		entries = append(entries, Entry{
			Key:   []uint64{uint64(pfx.Bits()), uint64(addr4(pfx.Addr()))},
			Value: []uint64{uint64(IdentityCIDRBase + i)},
		})
	}
	return entries
}

// addr4 returns an IPv4 address as a number in network order (the first
// octet most significant); big-endian fields are encoded from it.
func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
