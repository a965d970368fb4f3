<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents;

use Webhookd\CrmEvents\Exception\InvalidBrokerUrl;

/**
 * An `amqp://user:password@host:port/vhost` or `amqps://` URL, parsed once.
 * `__toString` masks the password, so the URL can go into messages and logs.
 */
final class BrokerUrl implements \Stringable
{
    private function __construct(
        public readonly bool $secure,
        public readonly string $host,
        public readonly int $port,
        public readonly string $user,
        #[\SensitiveParameter] public readonly string $password,
        public readonly string $vhost,
        private readonly string $redacted,
    ) {
    }

    /** @throws InvalidBrokerUrl */
    public static function parse(#[\SensitiveParameter] string $url): self
    {
        $redacted = self::redact($url);
        $parts = \parse_url(\trim($url));
        if ($parts === false || !isset($parts['scheme'], $parts['host'])) {
            throw new InvalidBrokerUrl("invalid broker URL {$redacted}: expected amqp://user:password@host:port/vhost");
        }
        $scheme = \strtolower($parts['scheme']);
        if ($scheme !== 'amqp' && $scheme !== 'amqps') {
            throw new InvalidBrokerUrl("invalid broker URL {$redacted}: the scheme must be amqp or amqps");
        }
        $secure = $scheme === 'amqps';
        // The AMQP URI spec: no path means the default vhost `/`; `/%2f` is `/` too.
        $path = $parts['path'] ?? '';
        $vhost = $path === '' || $path === '/' ? '/' : \rawurldecode(\substr($path, 1));
        if (\str_contains(\substr($path, 1), '/')) {
            throw new InvalidBrokerUrl("invalid broker URL {$redacted}: write a `/` in the vhost as %2f");
        }

        return new self(
            $secure,
            // parse_url keeps the brackets of an IPv6 literal; sockets want them too.
            $parts['host'],
            $parts['port'] ?? ($secure ? 5671 : 5672),
            \rawurldecode($parts['user'] ?? 'guest'),
            \rawurldecode($parts['pass'] ?? 'guest'),
            $vhost,
            $redacted,
        );
    }

    /** Masks the password of `scheme://user:password@host/...`, also in text that does not parse. */
    public static function redact(#[\SensitiveParameter] string $url): string
    {
        return (string) \preg_replace('#^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@#i', '$1:***@', $url);
    }

    public function __toString(): string
    {
        return $this->redacted;
    }
}
