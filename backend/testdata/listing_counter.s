; map stats: percpu_array, key 4 bytes {u32 index}, value 24 bytes {u64 packets, u64 bytes, u32 last_len}, 1 entries ; codegen.cue:80:3

; program count: SchedCLS, section "tc", 17 instructions, 8 bytes of stack ; codegen.cue:81:3
count:
     0: r6 = *(u32 *)(r1 + 0)               ; codegen.cue:83:3
     1: *(u32 *)(r10 - 8) = 0               ; codegen.cue:84:3
     2: r1 = map[stats] ll                  ; codegen.cue:84:3
     4: r2 = r10                            ; codegen.cue:84:3
     5: r2 += -8                            ; codegen.cue:84:3
     6: call bpf_map_lookup_elem#1          ; codegen.cue:84:3
     7: r1 = r0                             ; codegen.cue:84:3
     8: if r1 == 0 goto miss                ; codegen.cue:85:3
hit:
     9: r5 = 1                              ; codegen.cue:86:3
    10: lock *(u64 *)(r1 + 0) += r5         ; codegen.cue:86:3
    11: lock *(u64 *)(r1 + 8) += r6         ; codegen.cue:87:3
    12: *(u32 *)(r1 + 16) = r6              ; codegen.cue:88:3
    13: r0 = 0                              ; codegen.cue:89:3
    14: exit                                ; codegen.cue:89:3
miss:
    15: r0 = 2                              ; codegen.cue:90:3
    16: exit                                ; codegen.cue:90:3
