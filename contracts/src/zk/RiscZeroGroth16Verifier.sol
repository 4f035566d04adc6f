// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IRiscZeroVerifier} from "./IRiscZeroVerifier.sol";

/// @title RiscZeroGroth16Verifier
/// @notice Verifies RISC Zero Groth16 receipts with the EVM's BN254 precompiles (0x06 add, 0x07
///         mul, 0x08 pairing). One deployment accepts one parameter set: a control root (which
///         recursion programs, i.e. which zkVM release) and a BN254 control ID. The verifying key
///         is RISC Zero's universal Groth16 key, fixed below.
/// @dev Seal = 4-byte selector ‖ A (2 words) ‖ B (2×2 words) ‖ C (2 words), big-endian uint256,
///      G2 coordinates in EVM order (imaginary part first). The selector is the first 4 bytes of
///      the verifier-parameters digest, so a seal made for other parameters is rejected before
///      any pairing. Public inputs (5): the control root and the claim digest, each split into
///      two 128-bit halves (bytes reversed, low half first), and the BN254 control ID. The three
///      inputs fixed per deployment are folded into the key once, in the constructor, so a
///      verification costs two scalar multiplications and one 4-pair pairing check.
contract RiscZeroGroth16Verifier is IRiscZeroVerifier {
    /// @notice The seal is not 4 + 256 bytes long.
    error SealLengthInvalid(uint256 length);
    /// @notice The seal's selector names another verifier parameter set.
    error SelectorMismatch(bytes4 received, bytes4 expected);
    /// @notice A proof coordinate is outside the field or a point is not on the curve.
    error ProofMalformed();
    /// @notice The pairing check failed: the seal does not prove this claim.
    error ProofRejected();
    /// @notice The BN254 control ID is not an element of the scalar field.
    error ControlIdOutOfField();

    /// @notice Digest of the verifier parameters; its first 4 bytes are `SELECTOR`.
    bytes32 public immutable PARAMETERS_DIGEST;
    /// @notice The selector every accepted seal starts with.
    bytes4 public immutable SELECTOR;
    /// @notice The accepted recursion-program (control) root.
    bytes32 public immutable CONTROL_ROOT;
    /// @notice The accepted BN254 control ID.
    bytes32 public immutable BN254_CONTROL_ID;
    /// @dev IC0 + Σ (fixed public input × IC): the part of the input point known at deployment.
    uint256 private immutable KEY_X;
    uint256 private immutable KEY_Y;

    uint256 private constant SEAL_LENGTH = 4 + 256;
    /// @dev BN254 base field modulus.
    uint256 private constant Q = 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47;
    /// @dev BN254 scalar field order.
    uint256 private constant R = 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001;

    /// @dev sha256("risc0.Output"), sha256("risc0.ReceiptClaim"): tags of RISC Zero's tagged
    ///      struct hashes.
    bytes32 private constant OUTPUT_TAG = 0x77eafeb366a78b47747de0d7bb176284085ff5564887009a5be63da32d3559d4;
    bytes32 private constant CLAIM_TAG = 0xcb1fefcd1f2d9a64975cbbbf6e161e2914434b0cbb9960b84df5d717e86b48af;
    /// @dev sha256("risc0_groth16.VerifyingKey"), sha256("risc0_groth16.VerifyingKey.IC"),
    ///      sha256("risc0.Groth16ReceiptVerifierParameters").
    bytes32 private constant VK_TAG = 0xfa77044bc9f1aec494a3f424cb9104c24149acf58ca6b219b44bd6b1056f9d4c;
    bytes32 private constant IC_TAG = 0xf776d186bf72b819a595ab1833062ab4bb3592160c10857ebeca9691ce729f22;
    bytes32 private constant PARAMETERS_TAG = 0x60b97a2bdc471360c901f58eb3f22679fc24bd6bf6367e14a8a34744f29516aa;
    /// @dev The post state of a run that halted normally: SYSTEM_STATE_ZERO_DIGEST.
    bytes32 private constant HALTED_POST_STATE = 0xa3acc27117418996340b84e5a90f3ef4c49d22c79e44aad822ec9c313e1eb8e2;

    // RISC Zero's Groth16 verifying key. G2 points in EVM order: x.imag, x.real, y.imag, y.real.
    uint256 private constant ALPHA_X = 0x2d4d9aa7e302d9df41749d5507949d05dbea33fbb16c643b22f599a2be6df2e2;
    uint256 private constant ALPHA_Y = 0x14bedd503c37ceb061d8ec60209fe345ce89830a19230301f076caff004d1926;
    uint256 private constant BETA_X1 = 0x0967032fcbf776d1afc985f88877f182d38480a653f2decaa9794cbc3bf3060c;
    uint256 private constant BETA_X2 = 0x0e187847ad4c798374d0d6732bf501847dd68bc0e071241e0213bc7fc13db7ab;
    uint256 private constant BETA_Y1 = 0x304cfbd1e08a704a99f5e847d93f8c3caafddec46b7a0d379da69a4d112346a7;
    uint256 private constant BETA_Y2 = 0x1739c1b1a457a8c7313123d24d2f9192f896b7c63eea05a9d57f06547ad0cec8;
    uint256 private constant GAMMA_X1 = 0x198e9393920d483a7260bfb731fb5d25f1aa493335a9e71297e485b7aef312c2;
    uint256 private constant GAMMA_X2 = 0x1800deef121f1e76426a00665e5c4479674322d4f75edadd46debd5cd992f6ed;
    uint256 private constant GAMMA_Y1 = 0x090689d0585ff075ec9e99ad690c3395bc4b313370b38ef355acdadcd122975b;
    uint256 private constant GAMMA_Y2 = 0x12c85ea5db8c6deb4aab71808dcb408fe3d1e7690c43d37b4ce6cc0166fa7daa;
    uint256 private constant DELTA_X1 = 0x03b03cd5effa95ac9bee94f1f5ef907157bda4812ccf0b4c91f42bb629f83a1c;
    uint256 private constant DELTA_X2 = 0x1aa085ff28179a12d922dba0547057ccaae94b9d69cfaa4e60401fea7f3e0333;
    uint256 private constant DELTA_Y1 = 0x110c10134f200b19f6490846d518c9aea868366efb7228ca5c91d2940d030762;
    uint256 private constant DELTA_Y2 = 0x1e60f31fcbf757e837e867178318832d0b2d74d59e2fea1c7142df187d3fc6d3;
    uint256 private constant IC0_X = 0x12ac9a25dcd5e1a832a9061a082c15dd1d61aa9c4d553505739d0f5d65dc3be4;
    uint256 private constant IC0_Y = 0x025aa744581ebe7ad91731911c898569106ff5a2d30f3eee2b23c60ee980acd4;
    uint256 private constant IC1_X = 0x0707b920bc978c02f292fae2036e057be54294114ccc3c8769d883f688a1423f;
    uint256 private constant IC1_Y = 0x2e32a094b7589554f7bc357bf63481acd2d55555c203383782a4650787ff6642;
    uint256 private constant IC2_X = 0x0bca36e2cbe6394b3e249751853f961511011c7148e336f4fd974644850fc347;
    uint256 private constant IC2_Y = 0x2ede7c9acf48cf3a3729fa3d68714e2a8435d4fa6db8f7f409c153b1fcdf9b8b;
    uint256 private constant IC3_X = 0x1b8af999dbfbb3927c091cc2aaf201e488cbacc3e2c6b6fb5a25f9112e04f2a7;
    uint256 private constant IC3_Y = 0x2b91a26aa92e1b6f5722949f192a81c850d586d81a60157f3e9cf04f679cccd6;
    uint256 private constant IC4_X = 0x2b5f494ed674235b8ac1750bdfd5a7615f002d4a1dcefeddd06eda5a076ccd0d;
    uint256 private constant IC4_Y = 0x2fe520ad2020aab9cbba817fcbb9a863b8a76ff88f14f912c5e71665b2ad5e82;
    uint256 private constant IC5_X = 0x0f1c3c0d5d9da0fa03666843cde4e82e869ba5252fce3c25d5940320b1c4d493;
    uint256 private constant IC5_Y = 0x214bfcff74f425f6fe8c0d07b307482d8bc8bb2f3608f68287aa01bd0b69e809;

    /// @param controlRoot the recursion-program root of the zkVM release to accept
    /// @param bn254ControlId the BN254 control ID of that release (a scalar-field element)
    constructor(bytes32 controlRoot, bytes32 bn254ControlId) {
        if (uint256(bn254ControlId) >= R) revert ControlIdOutOfField();
        CONTROL_ROOT = controlRoot;
        BN254_CONTROL_ID = bn254ControlId;
        (uint256 root0, uint256 root1) = _split(controlRoot);
        (uint256 x, uint256 y) = _mulAdd(IC0_X, IC0_Y, IC1_X, IC1_Y, root0);
        (x, y) = _mulAdd(x, y, IC2_X, IC2_Y, root1);
        (KEY_X, KEY_Y) = _mulAdd(x, y, IC5_X, IC5_Y, uint256(bn254ControlId));
        bytes32 parameters = sha256(
            abi.encodePacked(
                PARAMETERS_TAG,
                controlRoot,
                _reverseBytes(uint256(bn254ControlId)),
                _verifierKeyDigest(),
                uint16(0x0300)
            )
        );
        PARAMETERS_DIGEST = parameters;
        SELECTOR = bytes4(parameters);
    }

    /// @inheritdoc IRiscZeroVerifier
    function verify(bytes calldata seal, bytes32 imageId, bytes32 journalDigest) external view {
        if (seal.length != SEAL_LENGTH) revert SealLengthInvalid(seal.length);
        if (bytes4(seal[:4]) != SELECTOR) revert SelectorMismatch(bytes4(seal[:4]), SELECTOR);
        (uint256 claim0, uint256 claim1) = _split(claimDigest(imageId, journalDigest));
        (uint256 x, uint256 y) = _mulAdd(KEY_X, KEY_Y, IC3_X, IC3_Y, claim0);
        (x, y) = _mulAdd(x, y, IC4_X, IC4_Y, claim1);
        _checkPairing(seal, x, y);
    }

    /// @notice The digest of the receipt claim "guest `imageId` halted with exit code 0, no
    ///         input, and committed a journal with digest `journalDigest`, no assumptions".
    /// @dev RISC Zero's tagged struct hash: sha256(sha256(tag) ‖ down digests ‖ data ‖
    ///      u16 little-endian count of down digests). ReceiptClaim: down = (input 0, pre = image
    ///      ID, post = halted state, output), data = (system exit << 24, user exit << 24) as u32;
    ///      Output: down = (journal digest, assumptions 0).
    function claimDigest(bytes32 imageId, bytes32 journalDigest) public pure returns (bytes32) {
        bytes32 output = sha256(abi.encodePacked(OUTPUT_TAG, journalDigest, bytes32(0), uint16(0x0200)));
        return sha256(
            abi.encodePacked(
                CLAIM_TAG, bytes32(0), imageId, HALTED_POST_STATE, output, uint32(0), uint32(0), uint16(0x0400)
            )
        );
    }

    /// @dev e(-A, B) · e(α, β) · e(input point, γ) · e(C, δ) == 1, the seal read from calldata.
    function _checkPairing(bytes calldata seal, uint256 inputX, uint256 inputY) private view {
        bool ok;
        uint256 result;
        assembly ("memory-safe") {
            let p := mload(0x40)
            let proof := add(seal.offset, 4)
            let ay := calldataload(add(proof, 0x20))
            ok := lt(ay, Q)
            mstore(p, calldataload(proof))
            mstore(add(p, 0x20), mod(sub(Q, ay), Q))
            calldatacopy(add(p, 0x40), add(proof, 0x40), 0x80)
            mstore(add(p, 0xc0), ALPHA_X)
            mstore(add(p, 0xe0), ALPHA_Y)
            mstore(add(p, 0x100), BETA_X1)
            mstore(add(p, 0x120), BETA_X2)
            mstore(add(p, 0x140), BETA_Y1)
            mstore(add(p, 0x160), BETA_Y2)
            mstore(add(p, 0x180), inputX)
            mstore(add(p, 0x1a0), inputY)
            mstore(add(p, 0x1c0), GAMMA_X1)
            mstore(add(p, 0x1e0), GAMMA_X2)
            mstore(add(p, 0x200), GAMMA_Y1)
            mstore(add(p, 0x220), GAMMA_Y2)
            calldatacopy(add(p, 0x240), add(proof, 0xc0), 0x40)
            mstore(add(p, 0x280), DELTA_X1)
            mstore(add(p, 0x2a0), DELTA_X2)
            mstore(add(p, 0x2c0), DELTA_Y1)
            mstore(add(p, 0x2e0), DELTA_Y2)
            ok := and(ok, staticcall(gas(), 0x08, p, 0x300, p, 0x20))
            result := mload(p)
        }
        if (!ok) revert ProofMalformed();
        if (result != 1) revert ProofRejected();
    }

    /// @dev (x, y) + s · (px, py) on BN254 G1.
    function _mulAdd(uint256 x, uint256 y, uint256 px, uint256 py, uint256 s)
        private
        view
        returns (uint256 rx, uint256 ry)
    {
        bool ok;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, x)
            mstore(add(p, 0x20), y)
            mstore(add(p, 0x80), px)
            mstore(add(p, 0xa0), py)
            mstore(add(p, 0xc0), s)
            ok := staticcall(gas(), 0x07, add(p, 0x80), 0x60, add(p, 0x40), 0x40)
            ok := and(ok, staticcall(gas(), 0x06, p, 0x80, p, 0x40))
            rx := mload(p)
            ry := mload(add(p, 0x20))
        }
        if (!ok) revert ProofMalformed();
    }

    /// @dev A digest as two public inputs: its bytes reversed, low 128 bits then high 128 bits.
    function _split(bytes32 digest) private pure returns (uint256 low, uint256 high) {
        uint256 reversed = uint256(_reverseBytes(uint256(digest)));
        return (uint128(reversed), reversed >> 128);
    }

    function _reverseBytes(uint256 v) private pure returns (bytes32) {
        v = ((v & 0xFF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00) >> 8)
            | ((v & 0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF) << 8);
        v = ((v & 0xFFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000) >> 16)
            | ((v & 0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF) << 16);
        v = ((v & 0xFFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000) >> 32)
            | ((v & 0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF) << 32);
        v = ((v & 0xFFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF0000000000000000) >> 64)
            | ((v & 0x0000000000000000FFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF) << 64);
        return bytes32((v >> 128) | (v << 128));
    }

    /// @dev RISC Zero's digest of the verifying key: a tagged struct of the G1/G2 points (each
    ///      the SHA-256 of its coordinates in the order above) and the tagged list of IC points.
    function _verifierKeyDigest() private pure returns (bytes32) {
        bytes32[6] memory ic = [
            sha256(abi.encodePacked(IC0_X, IC0_Y)),
            sha256(abi.encodePacked(IC1_X, IC1_Y)),
            sha256(abi.encodePacked(IC2_X, IC2_Y)),
            sha256(abi.encodePacked(IC3_X, IC3_Y)),
            sha256(abi.encodePacked(IC4_X, IC4_Y)),
            sha256(abi.encodePacked(IC5_X, IC5_Y))
        ];
        bytes32 list;
        for (uint256 i = ic.length; i > 0; --i) {
            list = sha256(abi.encodePacked(IC_TAG, ic[i - 1], list, uint16(0x0200)));
        }
        return sha256(
            abi.encodePacked(
                VK_TAG,
                sha256(abi.encodePacked(ALPHA_X, ALPHA_Y)),
                sha256(abi.encodePacked(BETA_X1, BETA_X2, BETA_Y1, BETA_Y2)),
                sha256(abi.encodePacked(GAMMA_X1, GAMMA_X2, GAMMA_Y1, GAMMA_Y2)),
                sha256(abi.encodePacked(DELTA_X1, DELTA_X2, DELTA_Y1, DELTA_Y2)),
                list,
                uint16(0x0500)
            )
        );
    }
}
