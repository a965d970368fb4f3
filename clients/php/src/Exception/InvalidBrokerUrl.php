<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/** A broker URL that is not `amqp://` or `amqps://`; the message masks the password. */
final class InvalidBrokerUrl extends \InvalidArgumentException implements CrmEventsException
{
}
