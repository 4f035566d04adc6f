// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Sha512
/// @notice SHA-512 and SHA-384 (FIPS 180-4) in EVM code, which has no precompile for either.
/// @dev Needed to check, on chain, what TDX measures with SHA-384 (RTMR extensions, runtime
///      event digests) and the SHA-512 REPORTDATA binding of a worker's keys. 64-bit words live
///      in the low bits of 256-bit stack words; a rotation is a shift of the word doubled into
///      bits 64..127, masked once per sum. About 44k gas per 128-byte block (py-evm and Anvil
///      agree), so every block an opening hashes is felt: see `ZkAttestationVerifier`.
library Sha512 {
    uint256 private constant MASK = 0xffffffffffffffff;

    /// @notice SHA-512(data) as two words: bytes 0..31 and 32..63 of the digest.
    function sha512(bytes memory data) internal pure returns (bytes32 high, bytes32 low) {
        uint256[8] memory state = [
            uint256(0x6a09e667f3bcc908), 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
            0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179
        ];
        _hash(data, state);
        return _words(state);
    }

    /// @notice SHA-384(data) as two words: bytes 0..31 of the digest, and bytes 32..47 followed
    ///         by 16 zero bytes.
    function sha384(bytes memory data) internal pure returns (bytes32 high, bytes32 low) {
        uint256[8] memory state = [
            uint256(0xcbbb9d5dc1059ed8), 0x629a292a367cd507, 0x9159015a3070dd17, 0x152fecd8f70e5939,
            0x67332667ffc00b31, 0x8eb44a8768581511, 0xdb0c2e0d64f98fa7, 0x47b5481dbefa4fa4
        ];
        _hash(data, state);
        (high, low) = _words(state);
        low &= bytes32(uint256(type(uint128).max) << 128);
    }

    function _words(uint256[8] memory s) private pure returns (bytes32 high, bytes32 low) {
        high = bytes32((s[0] << 192) | (s[1] << 128) | (s[2] << 64) | s[3]);
        low = bytes32((s[4] << 192) | (s[5] << 128) | (s[6] << 64) | s[7]);
    }

    /// @dev Pads `data` (0x80, zeros, 128-bit big-endian bit length) into fresh memory and runs
    ///      the compression function over every 128-byte block, updating `state` in place.
    function _hash(bytes memory data, uint256[8] memory state) private pure {
        bytes memory k = hex"428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc3956c25bf348b538"
            hex"59f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118d807aa98a303024212835b0145706fbe"
            hex"243185be4ee4b28c550c7dc3d5ffb4e272be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235"
            hex"c19bf174cf692694e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c65"
            hex"2de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5983e5152ee66dfab"
            hex"a831c66d2db43210b00327c898fb213fbf597fc7beef0ee4c6e00bf33da88fc2d5a79147930aa725"
            hex"06ca6351e003826f142929670a0e6e7027b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed"
            hex"53380d139d95b3df650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353b"
            hex"a2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30d192e819d6ef5218"
            hex"d69906245565a910f40e35855771202a106aa07032bbd1b819a4c116b8d2d0c81e376c085141ab53"
            hex"2748774cdf8eeb9934b0bcb5e19b48a8391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373"
            hex"682e6ff3d6b2b8a3748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
            hex"90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532bca273eceea26619c"
            hex"d186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed17806f067aa72176fba0a637dc5a2c898a6"
            hex"113f9804bef90dae1b710b35131c471b28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc"
            hex"431d67c49c100d4c4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817";
        assembly ("memory-safe") {
            // One SHA-512 round on (a..h) with kw = K[t] + W[t]; returns the new d and h. The
            // caller renames the eight registers instead of moving them (eight rounds a loop).
            function round(a, b, c, d, e, f, g, h, kw) -> dOut, hOut {
                let ee := or(e, shl(64, e))
                let t1 := add(
                    add(h, xor(xor(shr(14, ee), shr(18, ee)), shr(41, ee))), add(xor(g, and(e, xor(f, g))), kw)
                )
                let aa := or(a, shl(64, a))
                let t2 := add(xor(xor(shr(28, aa), shr(34, aa)), shr(39, aa)), or(and(a, b), and(c, or(a, b))))
                dOut := and(add(d, t1), MASK)
                hOut := and(add(t1, t2), MASK)
            }
            // W[t] for one 128-byte block at `blk` into `w`, and K[t] + W[t] 80 words later.
            function expand(blk, w, kp) {
                for { let t := 0 } lt(t, 16) { t := add(t, 1) } {
                    let x := shr(192, mload(add(blk, shl(3, t))))
                    let p := add(w, shl(5, t))
                    mstore(p, x)
                    mstore(add(p, 0xa00), add(x, shr(192, mload(add(kp, shl(3, t))))))
                }
                for { let t := 16 } lt(t, 80) { t := add(t, 1) } {
                    let p := add(w, shl(5, t))
                    let x := mload(sub(p, 0x1e0))
                    let xx := or(x, shl(64, x))
                    let y := mload(sub(p, 0x40))
                    let yy := or(y, shl(64, y))
                    let s0 := xor(xor(shr(1, xx), shr(8, xx)), shr(7, x))
                    let s1 := xor(xor(shr(19, yy), shr(61, yy)), shr(6, y))
                    x := and(add(add(mload(sub(p, 0x200)), s0), add(mload(sub(p, 0xe0)), s1)), MASK)
                    mstore(p, x)
                    mstore(add(p, 0xa00), add(x, shr(192, mload(add(kp, shl(3, t))))))
                }
            }
            // 80 rounds over K[t] + W[t] at `kw`, added into the eight state words at `state`.
            // Its own function, so few words are live on the stack while the rounds run.
            function compress(st, kw) {
                let a := mload(st)
                let b := mload(add(st, 0x20))
                let c := mload(add(st, 0x40))
                let d := mload(add(st, 0x60))
                let e := mload(add(st, 0x80))
                let f := mload(add(st, 0xa0))
                let g := mload(add(st, 0xc0))
                let h := mload(add(st, 0xe0))
                mstore(0x00, st)
                for { let q := kw } lt(q, add(kw, 0xa00)) { q := add(q, 0x100) } {
                    d, h := round(a, b, c, d, e, f, g, h, mload(q))
                    c, g := round(h, a, b, c, d, e, f, g, mload(add(q, 0x20)))
                    b, f := round(g, h, a, b, c, d, e, f, mload(add(q, 0x40)))
                    a, e := round(f, g, h, a, b, c, d, e, mload(add(q, 0x60)))
                    h, d := round(e, f, g, h, a, b, c, d, mload(add(q, 0x80)))
                    g, c := round(d, e, f, g, h, a, b, c, mload(add(q, 0xa0)))
                    f, b := round(c, d, e, f, g, h, a, b, mload(add(q, 0xc0)))
                    e, a := round(b, c, d, e, f, g, h, a, mload(add(q, 0xe0)))
                }
                let s := mload(0x00)
                mstore(s, and(add(mload(s), a), MASK))
                mstore(add(s, 0x20), and(add(mload(add(s, 0x20)), b), MASK))
                mstore(add(s, 0x40), and(add(mload(add(s, 0x40)), c), MASK))
                mstore(add(s, 0x60), and(add(mload(add(s, 0x60)), d), MASK))
                mstore(add(s, 0x80), and(add(mload(add(s, 0x80)), e), MASK))
                mstore(add(s, 0xa0), and(add(mload(add(s, 0xa0)), f), MASK))
                mstore(add(s, 0xc0), and(add(mload(add(s, 0xc0)), g), MASK))
                mstore(add(s, 0xe0), and(add(mload(add(s, 0xe0)), h), MASK))
            }
            let length := mload(data)
            let padded := and(add(length, 0x90), not(0x7f))
            // Scratch past the free memory pointer, left unallocated so repeated hashes reuse it:
            // the padded message, then W[0..79], then K[t] + W[t], one word each.
            let buf := mload(0x40)
            let w := add(buf, padded)
            // length word first: its 16 leading zero bytes may fall where the message goes
            mstore(add(buf, sub(padded, 0x20)), shl(3, length))
            mcopy(buf, add(data, 0x20), length)
            mstore8(add(buf, length), 0x80)
            calldatacopy(add(buf, add(length, 1)), calldatasize(), sub(padded, add(length, 17)))
            for { let blk := buf } lt(blk, w) { blk := add(blk, 0x80) } {
                expand(blk, w, add(k, 0x20))
                compress(state, add(w, 0xa00))
            }
        }
    }
}
