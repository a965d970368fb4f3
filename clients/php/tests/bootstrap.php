<?php

declare(strict_types=1);

// Loads the library without Composer: Composer's autoloader when `vendor/`
// exists, else Debian's php-amqplib (`apt-get install php-amqplib`, see
// scripts/ensure-php.sh) and a PSR-4 loader for src/.

$vendor = __DIR__ . '/../vendor/autoload.php';
if (is_file($vendor)) {
    require $vendor;

    return;
}

$debian = '/usr/share/php/PhpAmqpLib/autoload.php';
if (!is_file($debian)) {
    fwrite(STDERR, "php-amqplib not found: run `composer install` in clients/php, or scripts/ensure-php.sh\n");
    exit(70);
}
require $debian;

spl_autoload_register(static function (string $class): void {
    $prefix = 'Webhookd\\CrmEvents\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
