// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Agent} from "./Agent.sol";
import {Clones} from "./lib/Clones.sol";

/// @title AgentFactory
/// @notice Deploys agents as EIP-1167 clones of one `Agent` implementation.
/// @dev Each clone's code is the 45-byte proxy followed by its immutable configuration
///      (measurement ‖ registry ‖ royaltyBps ‖ timeout, 58 bytes), so a client can check that an
///      address is an agent of this factory from its code alone.
contract AgentFactory {
    /// @notice Largest royalty: the whole fee.
    uint16 public constant MAX_ROYALTY_BPS = 10_000;

    /// @notice The `Agent` every clone delegates to; deployed (and locked) by this constructor.
    address public immutable implementation;

    /// @notice `owner` created `agent`, pinned to `measurement`.
    event AgentCreated(address indexed agent, address indexed owner, bytes32 indexed measurement);

    /// @notice The measurement must not be zero.
    error ZeroMeasurement();
    /// @notice The registry must not be the zero address.
    error ZeroAddress();
    /// @notice The royalty exceeds 10000 basis points.
    error RoyaltyTooHigh(uint16 royaltyBps);
    /// @notice The timeout must be at least one second.
    error ZeroTimeout();
    /// @notice Deploying the clone failed.
    error CloneFailed();

    constructor() {
        implementation = address(new Agent());
    }

    /// @notice Deploys an agent owned by the caller.
    /// @param measurement the agent bundle's measurement a fulfilling worker must be registered with
    /// @param price the fee (wei) per request; the owner may change it later
    /// @param royaltyBps the owner's share of each fee in basis points; the worker gets the rest
    /// @param registry the `WorkerRegistry` that attests workers
    /// @param timeout seconds from request to deadline
    /// @return agent the new agent's address
    function createAgent(bytes32 measurement, uint96 price, uint16 royaltyBps, address registry, uint32 timeout)
        external
        returns (address agent)
    {
        if (measurement == bytes32(0)) revert ZeroMeasurement();
        if (registry == address(0)) revert ZeroAddress();
        if (royaltyBps > MAX_ROYALTY_BPS) revert RoyaltyTooHigh(royaltyBps);
        if (timeout == 0) revert ZeroTimeout();
        agent = Clones.cloneWithArgs(implementation, abi.encodePacked(measurement, registry, royaltyBps, timeout));
        if (agent == address(0)) revert CloneFailed();
        Agent(agent).initialize(msg.sender, price);
        emit AgentCreated(agent, msg.sender, measurement);
    }
}
