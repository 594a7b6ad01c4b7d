/**
 * Reply binding: a fence reply counts only if it answers a request we sent, and comes from
 * the host we sent it to (or a host we accept as claimant). The routing layer enforces it.
 */
import type { FenceReplyMessage, FenceRequestMessage, Message } from './schemas.js';

export function isReplyFor(
  reply: Message,
  request: FenceRequestMessage,
  claimants: Iterable<string> = [],
): reply is FenceReplyMessage {
  if (reply.type !== 'fence-reply') return false;
  if (reply.cluster !== request.cluster) return false;
  if (reply.body.requestId !== request.body.requestId) return false;
  if (reply.body.executingHost !== reply.from) return false;
  if (reply.from === request.body.toHost) return true;
  for (const host of claimants) if (host === reply.from) return true;
  return false;
}

/** The key under which the sender of a request waits for one host's reply to it. */
export function replyKey(requestId: string, host: string): string {
  return `${requestId}\u0000${host}`;
}

/**
 * The key a received reply settles: its request id and its signer. A reply whose signer claims
 * that another host executed the request binds to nothing (undefined).
 */
export function receivedReplyKey(reply: FenceReplyMessage): string | undefined {
  return reply.body.executingHost === reply.from
    ? replyKey(reply.body.requestId, reply.from)
    : undefined;
}
