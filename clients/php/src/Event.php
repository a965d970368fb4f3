<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use Webhookd\CrmEvents\Exception\InvalidEvent;

/**
 * One broker message, `{"id", "event", "timestamp", "user_id"?, "data"}`,
 * validated as the daemon validates what it consumes, so a message it would
 * dead-letter is refused here, before publishing, with the field at fault.
 */
final class Event
{
    /** The daemon's default `broker.max_message_bytes`. */
    public const DEFAULT_MAX_BYTES = 1048576;

    private const JSON_FLAGS = \JSON_THROW_ON_ERROR | \JSON_UNESCAPED_UNICODE | \JSON_UNESCAPED_SLASHES
        | \JSON_PRESERVE_ZERO_FRACTION;

    /** Nesting the daemon and receivers' JSON parsers accept. */
    private const MAX_DEPTH = 128;

    /** The event id, also the AMQP `message_id`. */
    public readonly string $id;

    /** Unix seconds. */
    public readonly int $timestamp;

    private readonly string $json;

    /**
     * @param array<string, mixed>|object $data the event's payload: an associative
     *        array or an object (an empty array is sent as `{}`)
     * @param string|null $id a UUID; a new UUIDv7 when null. Reuse the id of a
     *        failed publish to retry it: the daemon delivers an id once.
     * @param int|null $timestamp unix seconds; now when null
     * @param int|null $userId the CRM user the event is private to; null sends it
     *        to every subscribed webhook
     *
     * @throws InvalidEvent
     */
    public function __construct(
        public readonly string $event,
        array|object $data,
        public readonly ?int $userId = null,
        ?string $id = null,
        ?int $timestamp = null,
        int $maxBytes = self::DEFAULT_MAX_BYTES,
    ) {
        if (\preg_match(Catalogue::NAME_PATTERN, $event) !== 1) {
            throw new InvalidEvent('event', \sprintf(
                'must be `entity.action` in lower case, got %s',
                \json_encode(\mb_substr($event, 0, 64), \JSON_UNESCAPED_UNICODE | \JSON_INVALID_UTF8_SUBSTITUTE),
            ));
        }
        if (!Catalogue::isKnown($event)) {
            throw new InvalidEvent('event', "`{$event}` is not in the catalogue (see Catalogue::EVENTS)");
        }
        if (!Catalogue::isPublishable($event)) {
            throw new InvalidEvent('event', "`{$event}` is published by webhookd itself, not by the CRM");
        }
        if ($id !== null && !Uuid::isValid($id)) {
            throw new InvalidEvent('id', 'must be a UUID (8-4-4-4-12 hex digits)');
        }
        if (\is_array($data) && $data !== [] && \array_is_list($data)) {
            throw new InvalidEvent('data', 'must be an object (an associative array), not a list');
        }
        if ($maxBytes < 1) {
            throw new InvalidEvent('maxBytes', 'must be positive');
        }
        $this->id = \strtolower($id ?? Uuid::v7());
        $this->timestamp = $timestamp ?? \time();

        $message = ['id' => $this->id, 'event' => $event, 'timestamp' => $this->timestamp];
        if ($userId !== null) {
            $message['user_id'] = $userId;
        }
        // `(object) []` so that an empty payload is `{}`, not `[]`.
        $message['data'] = $data === [] ? new \stdClass() : $data;
        try {
            $json = \json_encode($message, self::JSON_FLAGS, self::MAX_DEPTH);
        } catch (\JsonException $e) {
            throw new InvalidEvent('data', 'cannot be encoded as JSON: ' . $e->getMessage(), $e);
        }
        // A JsonSerializable or object whose JSON is not an object.
        $encodedData = \json_decode($json, false, self::MAX_DEPTH + 1, \JSON_THROW_ON_ERROR)->data;
        if (!$encodedData instanceof \stdClass) {
            throw new InvalidEvent('data', 'must encode to a JSON object, got ' . \get_debug_type($encodedData));
        }
        if (\strlen($json) > $maxBytes) {
            throw new InvalidEvent('data', \sprintf(
                'makes the message %d bytes, over the limit of %d bytes (broker.max_message_bytes)',
                \strlen($json),
                $maxBytes,
            ));
        }
        $this->json = $json;
    }

    /** The message body as published. */
    public function toJson(): string
    {
        return $this->json;
    }

    /** The payload as the receiver will get it (`data` of the delivered envelope). */
    public function data(): mixed
    {
        return \json_decode($this->json, true, self::MAX_DEPTH + 1, \JSON_THROW_ON_ERROR)['data'];
    }
}
