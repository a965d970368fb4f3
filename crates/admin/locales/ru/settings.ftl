# Страница настроек.
settings-title = Настройки
settings-time-zone = Часовой пояс
settings-tz-browser = Как в браузере ({ $zone })
settings-tz-browser-unknown = Как в браузере (пока неизвестен — UTC)
settings-tz-help = Время на всех страницах показывается в этом поясе; наведите на него, чтобы увидеть время по UTC.
settings-tz-now = Сейчас:
settings-tz-unknown = Выберите часовой пояс из списка.
settings-language = Язык
settings-save = Сохранить
