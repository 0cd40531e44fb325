; map ip_cache: lpm_trie, key 8 bytes {u32 prefixlen, u32 addr}, value 4 bytes {u32 deny}, 16 entries ; codegen.cue:1:3

; program lpm_policy: XDP, section "xdp", 42 instructions, 8 bytes of stack ; codegen.cue:2:3
lpm_policy:
     0: r2 = *(u32 *)(r1 + 0)               ; codegen.cue:4:3
     1: r1 = *(u32 *)(r1 + 4)               ; codegen.cue:5:3
     2: r0 = r2                             ; codegen.cue:6:3
     3: r0 += 34                            ; codegen.cue:6:3
     4: if r0 > r1 goto short               ; codegen.cue:6:3
eth:
     5: r3 = *(u16 *)(r2 + 12)              ; codegen.cue:7:3
     6: r3 = be16 r3                        ; codegen.cue:7:3
     7: if r3 != 2048 goto pass             ; codegen.cue:8:3
ipv4:
     8: r3 = *(u8 *)(r2 + 14)               ; codegen.cue:9:3
     9: r3 &= 0xf                           ; codegen.cue:9:3
    10: if r3 < 5 goto short                ; codegen.cue:10:3
ipv4_hdr:
    11: r4 = *(u8 *)(r2 + 23)               ; codegen.cue:11:3
    12: r6 = *(u32 *)(r2 + 26)              ; codegen.cue:12:3
    13: r3 <<= 2                            ; codegen.cue:13:3
    14: r2 += 14                            ; codegen.cue:14:3
    15: r2 += r3                            ; codegen.cue:15:3
    16: r0 = r2                             ; codegen.cue:16:3
    17: r0 += 4                             ; codegen.cue:16:3
    18: if r0 > r1 goto short               ; codegen.cue:16:3
l4:
    19: if r4 != 6 goto pass                ; codegen.cue:17:3
tcp:
    20: r7 = *(u16 *)(r2 + 2)               ; codegen.cue:18:3
    21: r7 = be16 r7                        ; codegen.cue:18:3
    22: *(u32 *)(r10 - 8) = 32              ; codegen.cue:19:3
    23: *(u32 *)(r10 - 4) = r6              ; codegen.cue:19:3
    24: r1 = map[ip_cache] ll               ; codegen.cue:19:3
    26: r2 = r10                            ; codegen.cue:19:3
    27: r2 += -8                            ; codegen.cue:19:3
    28: call bpf_map_lookup_elem#1          ; codegen.cue:19:3
    29: r1 = r0                             ; codegen.cue:19:3
    30: if r1 == 0 goto unknown             ; codegen.cue:20:3
known:
    31: r1 = *(u32 *)(r1 + 0)               ; codegen.cue:21:3
    32: if r1 != 0 goto drop                ; codegen.cue:22:3
port:
    33: if r7 == 22 goto drop               ; codegen.cue:23:3
pass:
    34: r0 = 2                              ; codegen.cue:24:3
    35: exit                                ; codegen.cue:24:3
drop:
    36: r0 = 1                              ; codegen.cue:25:3
    37: exit                                ; codegen.cue:25:3
unknown:
    38: r0 = 3                              ; codegen.cue:26:3
    39: exit                                ; codegen.cue:26:3
short:
    40: r0 = 1                              ; codegen.cue:27:3
    41: exit                                ; codegen.cue:27:3
