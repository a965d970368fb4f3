<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

/** Event ids: UUIDs as the daemon parses them. */
final class Uuid
{
    private const PATTERN = '/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iD';

    /**
     * A new UUIDv7: time-ordered like the Rust producer's ids, so ids sort by
     * publication time in logs and the database.
     */
    public static function v7(): string
    {
        $millis = (int) (\microtime(true) * 1000);
        $bytes = \pack('J', $millis);
        $bytes = \substr($bytes, 2) . \random_bytes(10);
        $bytes[6] = \chr((\ord($bytes[6]) & 0x0f) | 0x70);
        $bytes[8] = \chr((\ord($bytes[8]) & 0x3f) | 0x80);
        $hex = \bin2hex($bytes);

        return \sprintf(
            '%s-%s-%s-%s-%s',
            \substr($hex, 0, 8),
            \substr($hex, 8, 4),
            \substr($hex, 12, 4),
            \substr($hex, 16, 4),
            \substr($hex, 20, 12),
        );
    }

    public static function isValid(string $id): bool
    {
        return \preg_match(self::PATTERN, $id) === 1;
    }
}
