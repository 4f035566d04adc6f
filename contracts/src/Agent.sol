// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IWorkerRegistry} from "./IWorkerRegistry.sol";
import {ECDSA} from "./lib/ECDSA.sol";
import {EIP712} from "./lib/EIP712.sol";

/// @title Agent
/// @notice One deployed AI agent. A caller escrows the fee with `request`; a TEE worker that the
///         registry attests to run this agent's measurement answers with a signed `fulfill`, which
///         credits the worker and the owner's royalty; after the deadline an open request can be
///         cancelled and its fee refunded. All payouts are pulled with `withdraw`.
/// @dev Used through EIP-1167 clones made by `AgentFactory`. The configuration that never changes
///      (measurement, registry, royalty, timeout) is appended to each clone's code and read with
///      EXTCODECOPY; in storage are price, request counter and flags (one slot, all `request`
///      touches), the owner, and the royalties accrued to the owner (so `fulfill` need not read
///      the owner to pay it).
///      Each request costs one storage slot: the commitment to its fields (the pattern of
///      Chainlink Functions). `fulfill` and `cancel` take the fields back (from the `Requested`
///      event) and check them against the commitment. Slot states: 0 = none or cancelled;
///      low bit 0 = open (the commitment, low bit cleared); low bit 1 = fulfilled (the output
///      hash with its low bit set).
contract Agent {
    /// @notice A request's fields, as emitted in `Requested`.
    /// @param caller who paid and gets the refund on cancel
    /// @param fee the escrowed fee in wei
    /// @param deadline last unix second at which `fulfill` is accepted
    /// @param inputHash keccak256 of the input bytes
    struct Request {
        address caller;
        uint96 fee;
        uint64 deadline;
        bytes32 inputHash;
    }

    /// @notice One item of `fulfillBatch`: the arguments of `fulfill`.
    struct Fulfilment {
        uint256 id;
        Request req;
        bytes output;
        bytes signature;
    }

    /// @notice What `requestStatus` reports.
    enum RequestStatus {
        None,
        Open,
        Fulfilled,
        Cancelled
    }

    /// @notice EIP-712 type hash of what a worker signs.
    bytes32 public constant FULFILLMENT_TYPEHASH =
        keccak256("Fulfillment(uint256 id,bytes32 inputHash,bytes32 outputHash)");
    /// @notice Royalty basis points are out of this.
    uint256 public constant BPS = 10_000;
    bytes32 private constant NAME_HASH = keccak256("Enclava Agent");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// @dev Code offset of the clone arguments: right after the 45-byte EIP-1167 proxy
    ///      (`Clones.PROXY_LENGTH`; inline assembly cannot name a library constant).
    uint256 private constant ARGS_OFFSET = 45;
    /// @dev Byte length of the clone arguments: measurement(32) ‖ registry(20) ‖ royaltyBps(2) ‖ timeout(4).
    uint256 private constant ARGS_LENGTH = 58;

    /// @notice The factory allowed to initialise clones of this implementation.
    address public immutable factory;

    // slot 0: everything `request` reads and writes
    uint96 private _price;
    uint64 private _requestCount;
    bool private _paused;
    bool private _initialized;
    // slot 1: read by the owner-only functions and `withdraw`
    address private _owner;
    // slot 2: royalties accrued to whoever is owner, so `fulfill` need not look the owner up
    uint256 private _royalties;
    mapping(uint256 id => bytes32) private _slots;
    mapping(address account => uint256) private _credits;
    bool private transient _locked;

    /// @notice `caller` escrowed `fee` for request `id`; `fulfill` is accepted until `deadline`.
    event Requested(uint256 indexed id, address indexed caller, bytes input, uint256 fee, uint64 deadline);
    /// @notice `worker` answered request `id` with `output`.
    event Fulfilled(uint256 indexed id, address indexed worker, bytes output);
    /// @notice Request `id` was cancelled after its deadline and its fee credited back to its caller.
    event Cancelled(uint256 indexed id);
    /// @notice `account` withdrew `amount` wei of credit.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice The price per request changed.
    event PriceChanged(uint96 previousPrice, uint96 newPrice);
    /// @notice New requests are refused (`paused`) or accepted again.
    event PausedSet(bool paused);
    /// @notice Ownership moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice The caller is not the owner.
    error NotOwner();
    /// @notice Only the factory may initialise a clone.
    error NotFactory();
    /// @notice The clone is already initialised (or is the implementation itself).
    error AlreadyInitialized();
    /// @notice The contract was never initialised by the factory.
    error NotInitialized();
    /// @notice The zero address was given where an account is required.
    error ZeroAddress();
    /// @notice The owner paused new requests.
    error Paused();
    /// @notice `msg.value` must equal the price.
    error WrongFee(uint256 expected, uint256 sent);
    /// @notice The request is not open: unknown, already fulfilled or cancelled.
    error RequestNotOpen(uint256 id);
    /// @notice The request is open but the fields passed do not match its commitment.
    error RequestMismatch(uint256 id);
    /// @notice `fulfill` after the request's deadline.
    error DeadlinePassed();
    /// @notice `cancel` at or before the request's deadline.
    error DeadlineNotReached();
    /// @notice The signature is malformed or non-canonical (length, high s, v).
    error BadSignature();
    /// @notice The signer holds no registration for this agent's measurement.
    error WorkerNotRegistered(address worker);
    /// @notice The signer is registered, but for `registered`, not this agent's measurement.
    error WrongMeasurement(address worker, bytes32 registered);
    /// @notice The signer's registration for this agent's measurement expired at `expiresAt`.
    error RegistrationExpired(address worker, uint64 expiresAt);
    /// @notice Nothing to withdraw.
    error NothingToWithdraw();
    /// @notice Sending the withdrawal failed.
    error TransferFailed();
    /// @notice A value-moving function was re-entered.
    error Reentrancy();

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    modifier onlyOwner() {
        if (msg.sender != _owner) revert NotOwner();
        _;
    }

    /// @dev The implementation is locked: initialised with no owner and paused, so it can neither
    ///      be initialised nor take requests. Only its clones are used.
    constructor() {
        factory = msg.sender;
        _initialized = true;
        _paused = true;
    }

    /// @notice Sets the clone's owner and price. Called once, by the factory, in the clone's creation
    ///         transaction.
    function initialize(address owner_, uint96 price_) external {
        if (msg.sender != factory) revert NotFactory();
        if (_initialized) revert AlreadyInitialized();
        if (owner_ == address(0)) revert ZeroAddress();
        _initialized = true;
        _price = price_;
        _owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
    }

    // ---------------------------------------------------------------- requests

    /// @notice Escrows the fee and opens a request for `input` (plain or encrypted to a worker).
    /// @param input the agent's input bytes; the worker reads them from the `Requested` event
    /// @return id the request id (1, 2, …)
    function request(bytes calldata input) external payable nonReentrant returns (uint256 id) {
        uint96 fee = _price;
        if (!_initialized) revert NotInitialized();
        if (_paused) revert Paused();
        if (msg.value != fee) revert WrongFee(fee, msg.value);
        id = ++_requestCount;
        (,,, uint32 timeout_) = _config();
        uint64 deadline = uint64(block.timestamp) + timeout_;
        bytes32 inputHash = keccak256(input);
        _slots[id] = _commitment(msg.sender, fee, deadline, inputHash);
        emit Requested(id, msg.sender, input, fee, deadline);
    }

    /// @notice Accepts a worker's answer to request `id` and credits the fee.
    /// @param id the request id
    /// @param req the request's fields, as emitted in `Requested`
    /// @param output the agent's output bytes
    /// @param signature the worker's 65-byte EIP-712 signature over
    ///        Fulfillment(id, req.inputHash, keccak256(output)) in this agent's domain
    function fulfill(uint256 id, Request calldata req, bytes calldata output, bytes calldata signature)
        external
        nonReentrant
    {
        (bytes32 measurement_, address registry_, uint16 royaltyBps_,) = _config();
        address worker = _recover(id, req, output, signature, domainSeparator());
        _requireRegistered(registry_, worker, measurement_);
        _close(id, output, worker);
        uint256 workerShare = _workerShare(req.fee, royaltyBps_);
        if (workerShare != 0) _credits[worker] += workerShare;
        if (req.fee != workerShare) _royalties += req.fee - workerShare;
    }

    /// @notice `fulfill` for many requests in one transaction; any bad item reverts the whole batch.
    /// @dev Each distinct worker is checked against the registry once and each credit slot written
    ///      once. The work is linear in the batch (calldata), with a search over the distinct
    ///      signers seen so far.
    function fulfillBatch(Fulfilment[] calldata items) external nonReentrant {
        (bytes32 measurement_, address registry_, uint16 royaltyBps_,) = _config();
        bytes32 separator = domainSeparator();
        address[] memory workers = new address[](items.length);
        uint256[] memory shares = new uint256[](items.length);
        uint256 distinct;
        uint256 royalty;
        for (uint256 i = 0; i < items.length; ++i) {
            Fulfilment calldata item = items[i];
            address worker = _recover(item.id, item.req, item.output, item.signature, separator);
            uint256 k = 0;
            while (k < distinct && workers[k] != worker) ++k;
            if (k == distinct) {
                _requireRegistered(registry_, worker, measurement_);
                workers[k] = worker;
                ++distinct;
            }
            _close(item.id, item.output, worker);
            uint256 workerShare = _workerShare(item.req.fee, royaltyBps_);
            shares[k] += workerShare;
            royalty += item.req.fee - workerShare;
        }
        for (uint256 k = 0; k < distinct; ++k) {
            if (shares[k] != 0) _credits[workers[k]] += shares[k];
        }
        if (royalty != 0) _royalties += royalty;
    }

    /// @notice Closes request `id` after its deadline and credits its fee back to its caller.
    ///         Anyone may call it; the refund always goes to `req.caller`.
    /// @param id the request id
    /// @param req the request's fields, as emitted in `Requested`
    function cancel(uint256 id, Request calldata req) external nonReentrant {
        _requireOpen(id, req);
        if (block.timestamp <= req.deadline) revert DeadlineNotReached();
        delete _slots[id];
        _credits[req.caller] += req.fee;
        emit Cancelled(id);
    }

    /// @notice Sends the caller its whole credit (worker fees, owner royalties, refunds).
    /// @return amount the wei sent
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = _credits[msg.sender];
        if (amount != 0) _credits[msg.sender] = 0;
        if (msg.sender == _owner) {
            amount += _royalties;
            _royalties = 0;
        }
        if (amount == 0) revert NothingToWithdraw();
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- owner

    /// @notice Sets the fee for future requests; open requests keep the fee they escrowed.
    function setPrice(uint96 newPrice) external onlyOwner {
        emit PriceChanged(_price, newPrice);
        _price = newPrice;
    }

    /// @notice Refuses (`true`) or accepts again new requests. Open requests can still be
    ///         fulfilled or cancelled.
    function setPaused(bool paused_) external onlyOwner {
        _paused = paused_;
        emit PausedSet(paused_);
    }

    /// @notice Hands the agent to `newOwner`. Royalties earned so far stay with the old owner.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        uint256 royalties = _royalties;
        if (royalties != 0) {
            _royalties = 0;
            _credits[msg.sender] += royalties;
        }
        emit OwnershipTransferred(msg.sender, newOwner);
        _owner = newOwner;
    }

    // ---------------------------------------------------------------- views

    /// @notice The account that sets price and pause and receives royalties.
    function owner() external view returns (address) {
        return _owner;
    }

    /// @notice The fee (wei) a new request must send.
    function price() external view returns (uint96) {
        return _price;
    }

    /// @notice Whether new requests are refused.
    function paused() external view returns (bool) {
        return _paused;
    }

    /// @notice How many requests were opened; the latest id.
    function requestCount() external view returns (uint64) {
        return _requestCount;
    }

    /// @notice The agent measurement a fulfilling worker must be registered with.
    function measurement() external view returns (bytes32 measurement_) {
        (measurement_,,,) = _config();
    }

    /// @notice The registry that attests workers.
    function registry() external view returns (address registry_) {
        (, registry_,,) = _config();
    }

    /// @notice The owner's share of each fee, in basis points.
    function royaltyBps() external view returns (uint16 royaltyBps_) {
        (,, royaltyBps_,) = _config();
    }

    /// @notice Seconds from request to deadline.
    function timeout() external view returns (uint32 timeout_) {
        (,,, timeout_) = _config();
    }

    /// @notice Wei `account` can withdraw (for the owner: its credits plus accrued royalties).
    function credits(address account) external view returns (uint256) {
        return account == _owner ? _credits[account] + _royalties : _credits[account];
    }

    /// @notice The raw request slot: 0, an open commitment (low bit 0) or a fulfilled marker
    ///         (keccak256(output) with the low bit set).
    function requestSlot(uint256 id) external view returns (bytes32) {
        return _slots[id];
    }

    /// @notice Whether request `id` is unknown, open, fulfilled or cancelled.
    function requestStatus(uint256 id) external view returns (RequestStatus) {
        if (id == 0 || id > _requestCount) return RequestStatus.None;
        bytes32 slot = _slots[id];
        if (slot == bytes32(0)) return RequestStatus.Cancelled;
        return uint256(slot) & 1 == 1 ? RequestStatus.Fulfilled : RequestStatus.Open;
    }

    /// @notice The commitment `request` stores for these fields (low bit cleared).
    function commitment(Request calldata req) external pure returns (bytes32) {
        return _commitment(req.caller, req.fee, req.deadline, req.inputHash);
    }

    /// @notice EIP-712 domain {name "Enclava Agent", version "1", chainId, this clone}.
    function domainSeparator() public view returns (bytes32) {
        return EIP712.domainSeparator(NAME_HASH, VERSION_HASH, address(this));
    }

    /// @notice The EIP-712 digest a worker signs to fulfil request `id`.
    function fulfillmentDigest(uint256 id, bytes32 inputHash, bytes32 outputHash) external view returns (bytes32) {
        return EIP712.digest(domainSeparator(), _fulfillmentHash(id, inputHash, outputHash));
    }

    // ---------------------------------------------------------------- internals

    /// @dev Checks that `req` matches open request `id`, the deadline and the signature; returns
    ///      the signer. Does not consult the registry.
    function _recover(
        uint256 id,
        Request calldata req,
        bytes calldata output,
        bytes calldata signature,
        bytes32 separator
    ) private view returns (address worker) {
        _requireOpen(id, req);
        if (block.timestamp > req.deadline) revert DeadlinePassed();
        bytes32 structHash = _fulfillmentHash(id, req.inputHash, keccak256(output));
        worker = ECDSA.recover(EIP712.digest(separator, structHash), signature);
        if (worker == address(0)) revert BadSignature();
    }

    /// @dev Marks request `id` fulfilled with `output` and emits `Fulfilled`.
    function _close(uint256 id, bytes calldata output, address worker) private {
        _slots[id] = bytes32(uint256(keccak256(output)) | 1);
        emit Fulfilled(id, worker, output);
    }

    function _requireOpen(uint256 id, Request calldata req) private view {
        bytes32 slot = _slots[id];
        if (slot != _commitment(req.caller, req.fee, req.deadline, req.inputHash)) {
            if (slot == bytes32(0) || uint256(slot) & 1 == 1) revert RequestNotOpen(id);
            revert RequestMismatch(id);
        }
    }

    /// @dev One registry read on success; only on failure more reads tell an expired registration
    ///      and one for another measurement from none at all.
    function _requireRegistered(address registry_, address worker, bytes32 measurement_) private view {
        IWorkerRegistry reg = IWorkerRegistry(registry_);
        if (reg.isRegistered(worker, measurement_)) return;
        uint64 expiresAt = reg.registrationFor(worker, measurement_).expiresAt;
        if (expiresAt != 0) revert RegistrationExpired(worker, expiresAt);
        IWorkerRegistry.Registration memory latest = reg.registration(worker);
        if (latest.expiresAt > block.timestamp) revert WrongMeasurement(worker, latest.measurement);
        revert WorkerNotRegistered(worker);
    }

    function _workerShare(uint96 fee, uint16 royaltyBps_) private pure returns (uint256) {
        return uint256(fee) * (BPS - royaltyBps_) / BPS;
    }

    function _commitment(address caller, uint96 fee, uint64 deadline, bytes32 inputHash)
        private
        pure
        returns (bytes32)
    {
        return bytes32(uint256(keccak256(abi.encode(caller, fee, deadline, inputHash))) & ~uint256(1));
    }

    function _fulfillmentHash(uint256 id, bytes32 inputHash, bytes32 outputHash) private pure returns (bytes32) {
        return keccak256(abi.encode(FULFILLMENT_TYPEHASH, id, inputHash, outputHash));
    }

    /// @dev Reads the arguments appended to the clone's code (see `Clones`).
    function _config()
        private
        view
        returns (bytes32 measurement_, address registry_, uint16 royaltyBps_, uint32 timeout_)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            extcodecopy(address(), ptr, ARGS_OFFSET, ARGS_LENGTH)
            measurement_ := mload(ptr)
            let packed := mload(add(ptr, 32))
            registry_ := shr(96, packed)
            royaltyBps_ := and(shr(80, packed), 0xffff)
            timeout_ := and(shr(48, packed), 0xffffffff)
        }
    }
}
