<?php

declare(strict_types=1);

namespace Webhookd\CrmEvents\Exception;

/** No broker node answered, or the connection broke and could not be restored. */
final class ConnectionFailed extends PublishFailed
{
}
