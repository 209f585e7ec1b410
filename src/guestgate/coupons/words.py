"""The words of what a front desk receives - printed cards, the printable page of a signed link, the
batch e-mail - in the portal's languages.

The language is the instance's `locale` (the portal's language, `guestgate.portal.i18n`); a
locale the portal does not speak reads English. Plurals: `<key>_one` for one (French: zero and
one), `<key>_other` otherwise.
"""

from __future__ import annotations

from guestgate import local_time
from guestgate.portal.i18n import DEFAULT_LOCALE, negotiate

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "default_name": "Guest Wi-Fi",
        "card_label": "Wi-Fi access code",
        "card_network": "Network: {name}",
        "card_valid_until": "Valid until {time}",
        "card_howto": "Redeem once, before then, on the sign-in page: type the code or scan.",
        "document_title": "Guest Wi-Fi coupons - {name}",
        "codes_one": "{count} valid code",
        "codes_other": "{count} valid codes",
        "coupons_one": "{count} guest Wi-Fi coupon",
        "coupons_other": "{count} guest Wi-Fi coupons",
        "made_at": "Made {time}",
        "schedule": "Schedule",
        "network": "Network",
        "instance": "Instance",
        "count": "Coupons",
        "valid_for": "Valid for",
        "valid_for_value": "{duration} (each code can be redeemed once)",
        "redeemable_until": "Redeemable until",
        "generated_at": "Generated at",
        "col_code": "Code",
        "col_valid_until": "Valid until",
        "actions": "Print and download",
        "print": "Print",
        "download_pdf": "Download PDF (cards with QR codes)",
        "download_csv": "Download CSV",
        "print_hint": "The buttons and these notes are not printed.",
        "next_page": "Next page",
        "more_codes": "There are more codes on the next page.",
        "none_left": "No valid codes are left at this link.",
        "page_private": "Anyone with the address of this page sees these codes until {time}. Do not "
        "forward it.",
        "times_in": "Times are in {zone}.",
        "deleted_schedule": "a deleted schedule",
        "email_intro": "{coupons} for {instance}, from the schedule {schedule}.",
        "email_attached": "Attached: the printable cards (PDF, one per code, with a QR code) and the "
        "codes (CSV).",
        "email_open_page": "Open the printable page of this batch",
        "email_link_until": "The link works until {time}.",
        "error_title": "This link cannot be used",
        "err_signature_invalid": "This link is incomplete or was changed. Open it again from the e-mail, "
        "or ask for a new one.",
        "err_url_expired": "This link has expired. Ask for a new one.",
        "err_url_revoked": "This link was withdrawn by the operator. Ask for a new one.",
        "err_resource_not_found": "These coupons no longer exist.",
        "err_rate_limited": "Too many requests. Please try again in a minute.",
        "err_other": "This link cannot be shown right now.",
    },
    "es": {
        "default_name": "Wifi para invitados",
        "card_label": "Código de acceso wifi",
        "card_network": "Red: {name}",
        "card_valid_until": "Válido hasta {time}",
        "card_howto": "Úsalo una vez, antes de esa hora, en la página de acceso: escribe el código o "
        "escanéalo.",
        "document_title": "Cupones de wifi para invitados - {name}",
        "codes_one": "{count} código válido",
        "codes_other": "{count} códigos válidos",
        "coupons_one": "{count} cupón de wifi para invitados",
        "coupons_other": "{count} cupones de wifi para invitados",
        "made_at": "Creados el {time}",
        "schedule": "Programación",
        "network": "Red",
        "instance": "Portal",
        "count": "Cupones",
        "valid_for": "Validez",
        "valid_for_value": "{duration} (cada código se puede canjear una vez)",
        "redeemable_until": "Canjeables hasta",
        "generated_at": "Generados el",
        "col_code": "Código",
        "col_valid_until": "Válido hasta",
        "actions": "Imprimir y descargar",
        "print": "Imprimir",
        "download_pdf": "Descargar PDF (tarjetas con código QR)",
        "download_csv": "Descargar CSV",
        "print_hint": "Los botones y estas notas no se imprimen.",
        "next_page": "Página siguiente",
        "more_codes": "Hay más códigos en la página siguiente.",
        "none_left": "Este enlace ya no tiene códigos válidos.",
        "page_private": "Cualquiera con la dirección de esta página ve estos códigos hasta {time}. No "
        "la reenvíes.",
        "times_in": "Las horas están en {zone}.",
        "deleted_schedule": "una programación eliminada",
        "email_intro": "{coupons} para {instance}, de la programación {schedule}.",
        "email_attached": "Adjuntos: las tarjetas para imprimir (PDF, una por código, con código QR) y "
        "los códigos (CSV).",
        "email_open_page": "Abrir la página imprimible de este lote",
        "email_link_until": "El enlace funciona hasta {time}.",
        "error_title": "Este enlace no se puede usar",
        "err_signature_invalid": "Este enlace está incompleto o se ha modificado. Ábrelo de nuevo desde el "
        "correo o pide uno nuevo.",
        "err_url_expired": "Este enlace ha caducado. Pide uno nuevo.",
        "err_url_revoked": "El operador ha retirado este enlace. Pide uno nuevo.",
        "err_resource_not_found": "Estos cupones ya no existen.",
        "err_rate_limited": "Demasiadas solicitudes. Inténtalo de nuevo dentro de un minuto.",
        "err_other": "Este enlace no se puede mostrar ahora.",
    },
    "fr": {
        "default_name": "Wi-Fi invités",
        "card_label": "Code d'accès Wi-Fi",
        "card_network": "Réseau : {name}",
        "card_valid_until": "Valable jusqu'au {time}",
        "card_howto": "À utiliser une fois, avant cette date, sur la page de connexion : saisissez le "
        "code ou scannez-le.",
        "document_title": "Tickets Wi-Fi invités - {name}",
        "codes_one": "{count} code valable",
        "codes_other": "{count} codes valables",
        "coupons_one": "{count} ticket Wi-Fi invité",
        "coupons_other": "{count} tickets Wi-Fi invités",
        "made_at": "Créés le {time}",
        "schedule": "Planification",
        "network": "Réseau",
        "instance": "Portail",
        "count": "Tickets",
        "valid_for": "Validité",
        "valid_for_value": "{duration} (chaque code ne sert qu'une fois)",
        "redeemable_until": "Utilisables jusqu'au",
        "generated_at": "Générés le",
        "col_code": "Code",
        "col_valid_until": "Valable jusqu'au",
        "actions": "Imprimer et télécharger",
        "print": "Imprimer",
        "download_pdf": "Télécharger le PDF (cartes avec QR code)",
        "download_csv": "Télécharger le CSV",
        "print_hint": "Les boutons et ces remarques ne sont pas imprimés.",
        "next_page": "Page suivante",
        "more_codes": "D'autres codes se trouvent sur la page suivante.",
        "none_left": "Ce lien ne contient plus de code valable.",
        "page_private": "Toute personne qui a l'adresse de cette page voit ces codes jusqu'au {time}. "
        "Ne la transférez pas.",
        "times_in": "Les heures sont en {zone}.",
        "deleted_schedule": "une planification supprimée",
        "email_intro": "{coupons} pour {instance}, de la planification {schedule}.",
        "email_attached": "En pièces jointes : les cartes à imprimer (PDF, une par code, avec un QR code) "
        "et les codes (CSV).",
        "email_open_page": "Ouvrir la page imprimable de ce lot",
        "email_link_until": "Le lien fonctionne jusqu'au {time}.",
        "error_title": "Ce lien ne peut pas être utilisé",
        "err_signature_invalid": "Ce lien est incomplet ou a été modifié. Rouvrez-le depuis l'e-mail ou "
        "demandez-en un nouveau.",
        "err_url_expired": "Ce lien a expiré. Demandez-en un nouveau.",
        "err_url_revoked": "L'opérateur a retiré ce lien. Demandez-en un nouveau.",
        "err_resource_not_found": "Ces tickets n'existent plus.",
        "err_rate_limited": "Trop de demandes. Réessayez dans une minute.",
        "err_other": "Ce lien ne peut pas être affiché pour le moment.",
    },
    "de": {
        "default_name": "Gäste-WLAN",
        "card_label": "WLAN-Zugangscode",
        "card_network": "Netz: {name}",
        "card_valid_until": "Gültig bis {time}",
        "card_howto": "Einmal einlösbar, bis dahin, auf der Anmeldeseite: Code eingeben oder scannen.",
        "document_title": "Gäste-WLAN-Gutscheine - {name}",
        "codes_one": "{count} gültiger Code",
        "codes_other": "{count} gültige Codes",
        "coupons_one": "{count} Gäste-WLAN-Gutschein",
        "coupons_other": "{count} Gäste-WLAN-Gutscheine",
        "made_at": "Erstellt am {time}",
        "schedule": "Zeitplan",
        "network": "Netz",
        "instance": "Portal",
        "count": "Gutscheine",
        "valid_for": "Gültigkeit",
        "valid_for_value": "{duration} (jeder Code ist einmal einlösbar)",
        "redeemable_until": "Einlösbar bis",
        "generated_at": "Erstellt am",
        "col_code": "Code",
        "col_valid_until": "Gültig bis",
        "actions": "Drucken und herunterladen",
        "print": "Drucken",
        "download_pdf": "PDF herunterladen (Karten mit QR-Code)",
        "download_csv": "CSV herunterladen",
        "print_hint": "Schaltflächen und Hinweise werden nicht mitgedruckt.",
        "next_page": "Nächste Seite",
        "more_codes": "Weitere Codes stehen auf der nächsten Seite.",
        "none_left": "Unter diesem Link sind keine gültigen Codes mehr.",
        "page_private": "Wer die Adresse dieser Seite hat, sieht diese Codes bis {time}. Bitte nicht "
        "weiterleiten.",
        "times_in": "Zeiten in {zone}.",
        "deleted_schedule": "einem gelöschten Zeitplan",
        "email_intro": "{coupons} für {instance}, aus dem Zeitplan {schedule}.",
        "email_attached": "Im Anhang: die druckbaren Karten (PDF, eine pro Code, mit QR-Code) und die "
        "Codes (CSV).",
        "email_open_page": "Die druckbare Seite dieses Stapels öffnen",
        "email_link_until": "Der Link funktioniert bis {time}.",
        "error_title": "Dieser Link kann nicht verwendet werden",
        "err_signature_invalid": "Dieser Link ist unvollständig oder wurde verändert. Öffnen Sie ihn erneut "
        "aus der E-Mail oder fordern Sie einen neuen an.",
        "err_url_expired": "Dieser Link ist abgelaufen. Fordern Sie einen neuen an.",
        "err_url_revoked": "Der Betreiber hat diesen Link zurückgezogen. Fordern Sie einen neuen an.",
        "err_resource_not_found": "Diese Gutscheine gibt es nicht mehr.",
        "err_rate_limited": "Zu viele Anfragen. Bitte versuchen Sie es in einer Minute erneut.",
        "err_other": "Dieser Link kann gerade nicht angezeigt werden.",
    },
    "pt": {
        "default_name": "Wi-Fi para visitantes",
        "card_label": "Código de acesso Wi-Fi",
        "card_network": "Rede: {name}",
        "card_valid_until": "Válido até {time}",
        "card_howto": "Use uma vez, até lá, na página de acesso: digite o código ou escaneie.",
        "document_title": "Vouchers de Wi-Fi para visitantes - {name}",
        "codes_one": "{count} código válido",
        "codes_other": "{count} códigos válidos",
        "coupons_one": "{count} voucher de Wi-Fi para visitantes",
        "coupons_other": "{count} vouchers de Wi-Fi para visitantes",
        "made_at": "Criados em {time}",
        "schedule": "Agendamento",
        "network": "Rede",
        "instance": "Portal",
        "count": "Vouchers",
        "valid_for": "Validade",
        "valid_for_value": "{duration} (cada código pode ser usado uma vez)",
        "redeemable_until": "Válidos até",
        "generated_at": "Gerados em",
        "col_code": "Código",
        "col_valid_until": "Válido até",
        "actions": "Imprimir e baixar",
        "print": "Imprimir",
        "download_pdf": "Baixar PDF (cartões com QR code)",
        "download_csv": "Baixar CSV",
        "print_hint": "Os botões e estas notas não são impressos.",
        "next_page": "Próxima página",
        "more_codes": "Há mais códigos na próxima página.",
        "none_left": "Não há mais códigos válidos neste link.",
        "page_private": "Quem tiver o endereço desta página vê estes códigos até {time}. Não o encaminhe.",
        "times_in": "Horários em {zone}.",
        "deleted_schedule": "um agendamento excluído",
        "email_intro": "{coupons} para {instance}, do agendamento {schedule}.",
        "email_attached": "Em anexo: os cartões para imprimir (PDF, um por código, com QR code) e os "
        "códigos (CSV).",
        "email_open_page": "Abrir a página para impressão deste lote",
        "email_link_until": "O link funciona até {time}.",
        "error_title": "Este link não pode ser usado",
        "err_signature_invalid": "Este link está incompleto ou foi alterado. Abra-o novamente pelo e-mail "
        "ou peça um novo.",
        "err_url_expired": "Este link expirou. Peça um novo.",
        "err_url_revoked": "O operador retirou este link. Peça um novo.",
        "err_resource_not_found": "Estes vouchers não existem mais.",
        "err_rate_limited": "Solicitações demais. Tente novamente em um minuto.",
        "err_other": "Este link não pode ser exibido agora.",
    },
}


class Words:
    """The words of one language (the instance's locale, or English)."""

    def __init__(self, instance_locale: str | None) -> None:
        self.language = negotiate(None, instance_locale)
        self._messages = MESSAGES.get(self.language, MESSAGES[DEFAULT_LOCALE])

    def __call__(self, key: str, **values: object) -> str:
        """The message `key` with its `{placeholders}` filled."""
        text = self._messages.get(key) or MESSAGES[DEFAULT_LOCALE][key]
        return text.format(**values) if values else text

    def counted(self, key: str, count: int, **values: object) -> str:
        """`<key>_one` or `<key>_other` for `count`, with `{count}` filled."""
        singular = count <= 1 if self.language == "fr" else count == 1
        return self(f"{key}_{'one' if singular else 'other'}", count=count, **values)

    def duration(self, minutes: int) -> str:
        """A length of time in words in this language (`8 hours`, `1 hour and 30 minutes`)."""
        return local_time.duration_words(minutes * 60, self.language)
