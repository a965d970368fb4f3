# Оболочка страницы и то, что нужно каждой странице.
skip-to-content = Перейти к содержимому
nav-main = Главное меню
nav-webhooks = Вебхуки
nav-stats = Статистика
nav-settings = Настройки
nav-language = Язык
sign-out = Выйти
admin-marker = (администратор)
footer-api = API (OpenAPI)
none-dash = —
body-none = Нет.
time-utc-hint = По UTC: { $utc }
n-deliveries = { $count ->
    [one] { $count } доставка
    [few] { $count } доставки
   *[many] { $count } доставок
}
badge-active = включён
badge-inactive = выключен
status-pending = ожидает
status-succeeded = доставлено
status-failed = не доставлено
status-queued = в очереди
notice-created = Вебхук создан.
notice-updated = Изменения сохранены.
notice-deleted = Вебхук удалён вместе с его доставками и журналом.
notice-switched-on = Вебхук включён: он снова получает события.
notice-switched-off = Вебхук выключен: он не получает событий.
notice-retried = { $count ->
    [0] Повторять нечего: неудачных доставок нет.
    [one] { $count } доставка будет повторена сейчас.
    [few] { $count } доставки будут повторены сейчас.
   *[many] { $count } доставок будут повторены сейчас.
}
notice-retried-more = Доставок будет повторено сейчас: { $count }. В этом промежутке есть ещё неудачные: отправьте его снова, чтобы повторить следующие.
notice-signed-in-again = Вы снова вошли. Отправленное до окончания сеанса не сохранено: отправьте ещё раз.
