; map flows: hash, key 8 bytes {u16 a, u32 b}, value 8 bytes {u64 x}, 64 entries ; codegen.cue:40:3

; program spill_heavy: SchedCLS, section "tc", 124 instructions, 112 bytes of stack ; codegen.cue:41:3
spill_heavy:
     0: r2 = *(u32 *)(r1 + 76)              ; codegen.cue:43:3
     1: r1 = *(u32 *)(r1 + 80)              ; codegen.cue:44:3
     2: r0 = r2                             ; codegen.cue:45:3
     3: r0 += 42                            ; codegen.cue:45:3
     4: if r0 > r1 goto short               ; codegen.cue:45:3
load:
     5: r6 = *(u16 *)(r2 + 14)              ; codegen.cue:46:3
     6: r7 = *(u16 *)(r2 + 16)              ; codegen.cue:46:3
     7: r8 = *(u16 *)(r2 + 18)              ; codegen.cue:46:3
     8: r0 = *(u16 *)(r2 + 20)              ; codegen.cue:46:3
     9: *(u64 *)(r10 - 8) = r0              ; codegen.cue:46:3
    10: r0 = *(u16 *)(r2 + 22)              ; codegen.cue:46:3
    11: *(u64 *)(r10 - 16) = r0             ; codegen.cue:46:3
    12: r0 = *(u16 *)(r2 + 24)              ; codegen.cue:46:3
    13: *(u64 *)(r10 - 24) = r0             ; codegen.cue:46:3
    14: r0 = *(u16 *)(r2 + 26)              ; codegen.cue:46:3
    15: *(u64 *)(r10 - 32) = r0             ; codegen.cue:46:3
    16: r0 = *(u16 *)(r2 + 28)              ; codegen.cue:46:3
    17: *(u64 *)(r10 - 40) = r0             ; codegen.cue:46:3
    18: r0 = *(u16 *)(r2 + 30)              ; codegen.cue:46:3
    19: *(u64 *)(r10 - 48) = r0             ; codegen.cue:46:3
    20: r0 = *(u16 *)(r2 + 32)              ; codegen.cue:46:3
    21: *(u64 *)(r10 - 56) = r0             ; codegen.cue:46:3
    22: r0 = *(u16 *)(r2 + 34)              ; codegen.cue:46:3
    23: *(u64 *)(r10 - 64) = r0             ; codegen.cue:46:3
    24: r0 = *(u16 *)(r2 + 36)              ; codegen.cue:46:3
    25: *(u64 *)(r10 - 72) = r0             ; codegen.cue:46:3
    26: r0 = *(u16 *)(r2 + 38)              ; codegen.cue:46:3
    27: *(u64 *)(r10 - 80) = r0             ; codegen.cue:46:3
    28: r0 = *(u16 *)(r2 + 40)              ; codegen.cue:46:3
    29: *(u64 *)(r10 - 88) = r0             ; codegen.cue:46:3
    30: call bpf_ktime_get_ns#5             ; codegen.cue:47:3
    31: *(u64 *)(r10 - 96) = r0             ; codegen.cue:47:3
    32: *(u64 *)(r10 - 112) = 0             ; codegen.cue:48:3
    33: *(u16 *)(r10 - 112) = r6            ; codegen.cue:48:3
    34: *(u32 *)(r10 - 108) = r7            ; codegen.cue:48:3
    35: *(u64 *)(r10 - 104) = r8            ; codegen.cue:48:3
    36: r1 = map[flows] ll                  ; codegen.cue:48:3
    38: r2 = r10                            ; codegen.cue:48:3
    39: r2 += -112                          ; codegen.cue:48:3
    40: r3 = r10                            ; codegen.cue:48:3
    41: r3 += -104                          ; codegen.cue:48:3
    42: r4 = 0                              ; codegen.cue:48:3
    43: call bpf_map_update_elem#2          ; codegen.cue:48:3
    44: *(u64 *)(r10 - 112) = 0             ; codegen.cue:49:3
    45: r5 = *(u64 *)(r10 - 8)              ; codegen.cue:49:3
    46: *(u16 *)(r10 - 112) = r5            ; codegen.cue:49:3
    47: r5 = *(u64 *)(r10 - 16)             ; codegen.cue:49:3
    48: *(u32 *)(r10 - 108) = r5            ; codegen.cue:49:3
    49: r1 = map[flows] ll                  ; codegen.cue:49:3
    51: r2 = r10                            ; codegen.cue:49:3
    52: r2 += -112                          ; codegen.cue:49:3
    53: call bpf_map_delete_elem#3          ; codegen.cue:49:3
    54: r9 = r0                             ; codegen.cue:49:3
    55: *(u64 *)(r10 - 112) = 0             ; codegen.cue:50:3
    56: *(u16 *)(r10 - 112) = r6            ; codegen.cue:50:3
    57: *(u32 *)(r10 - 108) = r7            ; codegen.cue:50:3
    58: r1 = map[flows] ll                  ; codegen.cue:50:3
    60: r2 = r10                            ; codegen.cue:50:3
    61: r2 += -112                          ; codegen.cue:50:3
    62: call bpf_map_lookup_elem#1          ; codegen.cue:50:3
    63: r1 = r0                             ; codegen.cue:50:3
    64: if r1 == 0 goto short               ; codegen.cue:51:3
found:
    65: r2 = *(u64 *)(r1 + 0)               ; codegen.cue:52:3
    66: r5 = *(u64 *)(r10 - 24)             ; codegen.cue:53:3
    67: *(u64 *)(r1 + 0) = r5               ; codegen.cue:53:3
    68: r2 += r9                            ; codegen.cue:54:3
    69: r6 *= 1                             ; codegen.cue:55:3
    70: r2 += r6                            ; codegen.cue:56:3
    71: r7 *= 2                             ; codegen.cue:55:3
    72: r2 += r7                            ; codegen.cue:56:3
    73: r8 *= 3                             ; codegen.cue:55:3
    74: r2 += r8                            ; codegen.cue:56:3
    75: r1 = *(u64 *)(r10 - 8)              ; codegen.cue:55:3
    76: r1 *= 4                             ; codegen.cue:55:3
    77: r2 += r1                            ; codegen.cue:56:3
    78: r1 = *(u64 *)(r10 - 16)             ; codegen.cue:55:3
    79: r1 *= 5                             ; codegen.cue:55:3
    80: r2 += r1                            ; codegen.cue:56:3
    81: r1 = *(u64 *)(r10 - 24)             ; codegen.cue:55:3
    82: r1 *= 6                             ; codegen.cue:55:3
    83: r2 += r1                            ; codegen.cue:56:3
    84: r1 = *(u64 *)(r10 - 32)             ; codegen.cue:55:3
    85: r1 *= 7                             ; codegen.cue:55:3
    86: r2 += r1                            ; codegen.cue:56:3
    87: r1 = *(u64 *)(r10 - 40)             ; codegen.cue:55:3
    88: r1 *= 8                             ; codegen.cue:55:3
    89: r2 += r1                            ; codegen.cue:56:3
    90: r1 = *(u64 *)(r10 - 48)             ; codegen.cue:55:3
    91: r1 *= 9                             ; codegen.cue:55:3
    92: r2 += r1                            ; codegen.cue:56:3
    93: r1 = *(u64 *)(r10 - 56)             ; codegen.cue:55:3
    94: r1 *= 10                            ; codegen.cue:55:3
    95: r2 += r1                            ; codegen.cue:56:3
    96: r1 = *(u64 *)(r10 - 64)             ; codegen.cue:55:3
    97: r1 *= 11                            ; codegen.cue:55:3
    98: r2 += r1                            ; codegen.cue:56:3
    99: r1 = *(u64 *)(r10 - 72)             ; codegen.cue:55:3
   100: r1 *= 12                            ; codegen.cue:55:3
   101: r2 += r1                            ; codegen.cue:56:3
   102: r1 = *(u64 *)(r10 - 80)             ; codegen.cue:55:3
   103: r1 *= 13                            ; codegen.cue:55:3
   104: r2 += r1                            ; codegen.cue:56:3
   105: r1 = *(u64 *)(r10 - 88)             ; codegen.cue:55:3
   106: r1 *= 14                            ; codegen.cue:55:3
   107: r2 += r1                            ; codegen.cue:56:3
   108: r1 = *(u64 *)(r10 - 32)             ; codegen.cue:57:3
   109: r1 = be32 r1                        ; codegen.cue:57:3
   110: r2 ^= r1                            ; codegen.cue:57:3
   111: r1 = *(u64 *)(r10 - 40)             ; codegen.cue:58:3
   112: r1 s>>= 3                           ; codegen.cue:58:3
   113: r2 -= r1                            ; codegen.cue:58:3
   114: r1 = *(u64 *)(r10 - 48)             ; codegen.cue:59:3
   115: r1 >>= 1                            ; codegen.cue:59:3
   116: r2 |= r1                            ; codegen.cue:59:3
   117: r0 = *(u64 *)(r10 - 96)             ; codegen.cue:60:3
   118: if r0 == 0 goto short               ; codegen.cue:60:3
done:
   119: r2 &= 0x7fffffff                    ; codegen.cue:61:3
   120: r0 = r2                             ; codegen.cue:61:3
   121: exit                                ; codegen.cue:61:3
short:
   122: r0 = 1048576                        ; codegen.cue:62:3
   123: exit                                ; codegen.cue:62:3
