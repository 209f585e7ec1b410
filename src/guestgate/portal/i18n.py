"""The portal's words in English, Spanish, French, German and Portuguese.

The language is the browser's (`Accept-Language`) when it names one of these, otherwise the
instance's `locale`, otherwise English.
"""

from __future__ import annotations

DEFAULT_LOCALE = "en"
# Accept-Language longer than this is not parsed (no browser sends that much).
_MAX_ACCEPT_LANGUAGE = 512

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "page_title": "Sign in",
        "code_label": "Access code",
        "code_hint": "The 6-character code on your voucher.",
        "terms_heading": "Terms and conditions",
        "accept_terms": "I accept the terms and conditions",
        "submit": "Connect",
        "preview_banner": "Preview: this is the page guests see. Nothing can be redeemed here.",
        "oauth_unavailable": "Signing in with an account is not available on this network yet.",
        "oauth_sign_in_with": "Sign in with {provider}",
        "oauth_hint": "You will be sent to {provider} to sign in, then brought back here.",
        "oauth_redirect_title": "One moment…",
        "oauth_redirecting": "Taking you to {provider} to sign in…",
        "oauth_continue_to": "Continue to {provider}",
        "cna_heading": "Continue in your browser",
        "cna_body": "{provider} does not allow signing in from this window. Close it, stay connected to "
        "the Wi-Fi, open {browser} and go to this address:",
        "cna_url_label": "Address to open",
        "browser_default": "your web browser",
        "err_oauth_state": "This sign-in could not be verified. Please start again.",
        "err_oauth_expired": "This sign-in took too long. Please start again.",
        "err_oauth_replayed": "This sign-in has already been used. Please start again.",
        "err_oauth_denied": "Sign-in was cancelled. You can start again whenever you like.",
        "err_oauth_failed": "The sign-in service could not confirm who you are. Please try again.",
        "err_oauth_unreachable": "The sign-in service cannot be reached right now. Please try again in a "
        "moment.",
        "err_oauth_unavailable": "Signing in with an account is not set up correctly here. Please ask the "
        "staff.",
        "err_oauth_test_link": "This test link is invalid or has expired.",
        "oauth_test_title": "Sign-in test",
        "oauth_test_ok": "Signing in with {provider} works. This is who it says you are:",
        "oauth_test_note": "This was a test: no session was created and no network was opened.",
        "identity_provider": "Provider",
        "identity_subject": "Subject",
        "identity_email": "E-mail",
        "identity_name": "Name",
        "not_given": "not given",
        "err_missing_code": "Please enter your access code.",
        "err_malformed": "An access code has 6 letters and digits. Please check it and try again.",
        "err_unknown": "We don't recognise that code. Please check it and try again.",
        "err_expired": "This code has expired. Please ask for a new one.",
        "err_used": "This code has already been used. Each code works only once.",
        "err_used_many": "This code has been used {count} times, as many as it allows. Please ask for a new "
        "one.",
        "err_in_use": "This code is already in use on another device. Please try again when that device has "
        "left, or ask for a new code.",
        "err_in_use_many": "This code is already in use on {count} devices, as many as it allows at once. "
        "Please try again when one of them has left, or ask for a new code.",
        "err_terms": "Please accept the terms and conditions to continue.",
        "locked_title": "Too many attempts",
        "locked_reload": "This page shows the sign-in form again when the time is up.",
        "locked_client": "Too many wrong codes were entered from this device. Please try again in {wait}.",
        "locked_site": "Too many wrong codes were entered on this network. Please try again in {wait}.",
        "success_title": "You're connected",
        "success_body": "You're online. Enjoy!",
        "activating_title": "Connecting…",
        "activating_body": "Your session has started. We are opening the network for your device.",
        "activating_hint": "This page refreshes by itself in a few seconds.",
        "remaining": "Time remaining",
        "continue": "Continue",
        "orig_unvouched": "You were on your way to:",
        "status_title": "Your connection",
        "status_link": "Connection status",
        "not_signed_in": "You are not signed in on this network.",
        "session_ended": "Your session has ended.",
        "data_left": "Data left",
        "speed": "Speed",
        "speed_value": "↓ {down} · ↑ {up}",
        "speed_unlimited": "no limit",
        "quota_title": "Data limit reached",
        "quota_exceeded": "You have used all the data this session allowed, so it has ended. Ask for a new code to connect again.",
        "sign_in": "Sign in",
        "start_again": "Start again",
        "error_title": "Sorry",
        "err_site_missing": "This sign-in link is incomplete. Open any web page to be sent to the right place.",
        "err_site_unknown": "This network is not known here.",
        "err_params": "This sign-in link contains values we cannot use.",
        "err_signature": "This sign-in link could not be verified. Open any web page to be sent here again.",
        "err_link_expired": "This sign-in link has expired. Open any web page to be sent here again.",
        "err_outside": "Your device is not on a network served by this portal.",
        "err_no_portal": "No sign-in page is set up for your network yet.",
        "err_token_missing": "This form is incomplete. Please start again.",
        "err_token_invalid": "This sign-in page could not be verified. Please start again.",
        "err_token_expired": "This sign-in page has expired. Please start again.",
        "err_preview": "This preview link is invalid or has expired.",
        "err_not_found": "There is no page at this address.",
        "err_method": "This page cannot be used that way.",
        "err_too_large": "The form sent was too large.",
        "err_unavailable": "The service is busy. Please try again in a moment.",
        "err_internal": "Something went wrong on our side. Please try again in a moment.",
        "unit_d": "d",
        "unit_h": "h",
        "unit_min": "min",
        "less_minute": "less than a minute",
        "ends_at": "until {time}",
    },
    "es": {
        "page_title": "Iniciar sesión",
        "code_label": "Código de acceso",
        "code_hint": "El código de 6 caracteres de tu cupón.",
        "terms_heading": "Términos y condiciones",
        "accept_terms": "Acepto los términos y condiciones",
        "submit": "Conectar",
        "preview_banner": "Vista previa: esta es la página que ven los invitados. Aquí no se puede canjear nada.",
        "oauth_unavailable": "El inicio de sesión con una cuenta aún no está disponible en esta red.",
        "oauth_sign_in_with": "Iniciar sesión con {provider}",
        "oauth_hint": "Te enviaremos a {provider} para iniciar sesión y luego volverás aquí.",
        "oauth_redirect_title": "Un momento…",
        "oauth_redirecting": "Te llevamos a {provider} para iniciar sesión…",
        "oauth_continue_to": "Continuar a {provider}",
        "cna_heading": "Continúa en tu navegador",
        "cna_body": "{provider} no permite iniciar sesión desde esta ventana. Ciérrala, sigue conectado a "
        "la red wifi, abre {browser} y ve a esta dirección:",
        "cna_url_label": "Dirección que debes abrir",
        "browser_default": "tu navegador",
        "err_oauth_state": "No se ha podido verificar este inicio de sesión. Empieza de nuevo.",
        "err_oauth_expired": "Este inicio de sesión ha tardado demasiado. Empieza de nuevo.",
        "err_oauth_replayed": "Este inicio de sesión ya se ha utilizado. Empieza de nuevo.",
        "err_oauth_denied": "Se ha cancelado el inicio de sesión. Puedes empezar de nuevo cuando quieras.",
        "err_oauth_failed": "El servicio de inicio de sesión no ha podido confirmar quién eres. Inténtalo "
        "de nuevo.",
        "err_oauth_unreachable": "No se puede acceder al servicio de inicio de sesión en este momento. "
        "Inténtalo de nuevo en un momento.",
        "err_oauth_unavailable": "El inicio de sesión con una cuenta no está bien configurado aquí. "
        "Pregunta al personal.",
        "err_oauth_test_link": "Este enlace de prueba no es válido o ha caducado.",
        "oauth_test_title": "Prueba de inicio de sesión",
        "oauth_test_ok": "El inicio de sesión con {provider} funciona. Esto es lo que dice de ti:",
        "oauth_test_note": "Era una prueba: no se ha creado ninguna sesión ni se ha abierto la red.",
        "identity_provider": "Proveedor",
        "identity_subject": "Identificador",
        "identity_email": "Correo electrónico",
        "identity_name": "Nombre",
        "not_given": "no indicado",
        "err_missing_code": "Introduce tu código de acceso.",
        "err_malformed": "Un código de acceso tiene 6 letras y números. Revísalo e inténtalo de nuevo.",
        "err_unknown": "No reconocemos ese código. Revísalo e inténtalo de nuevo.",
        "err_expired": "Este código ha caducado. Pide uno nuevo.",
        "err_used": "Este código ya se ha utilizado. Cada código solo funciona una vez.",
        "err_used_many": "Este código ya se ha utilizado {count} veces, todas las que permite. Pide uno "
        "nuevo.",
        "err_in_use": "Este código ya está en uso en otro dispositivo. Vuelve a intentarlo cuando ese "
        "dispositivo se haya desconectado o pide un código nuevo.",
        "err_in_use_many": "Este código ya está en uso en {count} dispositivos, todos los que permite a la "
        "vez. Vuelve a intentarlo cuando uno de ellos se haya desconectado o pide un código nuevo.",
        "err_terms": "Acepta los términos y condiciones para continuar.",
        "locked_title": "Demasiados intentos",
        "locked_reload": "Esta página volverá a mostrar el formulario cuando se cumpla el tiempo.",
        "locked_client": "Se han introducido demasiados códigos incorrectos desde este dispositivo. "
        "Inténtalo de nuevo dentro de {wait}.",
        "locked_site": "Se han introducido demasiados códigos incorrectos en esta red. "
        "Inténtalo de nuevo dentro de {wait}.",
        "success_title": "Estás conectado",
        "success_body": "Ya tienes acceso a Internet. ¡Disfrútalo!",
        "activating_title": "Conectando…",
        "activating_body": "Tu sesión ha comenzado. Estamos abriendo la red para tu dispositivo.",
        "activating_hint": "Esta página se actualiza sola en unos segundos.",
        "remaining": "Tiempo restante",
        "continue": "Continuar",
        "orig_unvouched": "Ibas a:",
        "status_title": "Tu conexión",
        "status_link": "Estado de la conexión",
        "not_signed_in": "No has iniciado sesión en esta red.",
        "session_ended": "Tu sesión ha terminado.",
        "data_left": "Datos restantes",
        "speed": "Velocidad",
        "speed_value": "↓ {down} · ↑ {up}",
        "speed_unlimited": "sin límite",
        "quota_title": "Límite de datos alcanzado",
        "quota_exceeded": "Has usado todos los datos que permitía esta sesión, así que ha terminado. Pide un código nuevo para volver a conectarte.",
        "sign_in": "Iniciar sesión",
        "start_again": "Empezar de nuevo",
        "error_title": "Lo sentimos",
        "err_site_missing": "Este enlace de acceso está incompleto. Abre cualquier página web para que te redirijamos.",
        "err_site_unknown": "Esta red no es conocida aquí.",
        "err_params": "Este enlace de acceso contiene valores que no podemos usar.",
        "err_signature": "No se ha podido verificar este enlace de acceso. Abre cualquier página web para volver aquí.",
        "err_link_expired": "Este enlace de acceso ha caducado. Abre cualquier página web para volver aquí.",
        "err_outside": "Tu dispositivo no está en una red atendida por este portal.",
        "err_no_portal": "Todavía no hay una página de acceso configurada para tu red.",
        "err_token_missing": "Este formulario está incompleto. Empieza de nuevo.",
        "err_token_invalid": "No se ha podido verificar esta página de acceso. Empieza de nuevo.",
        "err_token_expired": "Esta página de acceso ha caducado. Empieza de nuevo.",
        "err_preview": "Este enlace de vista previa no es válido o ha caducado.",
        "err_not_found": "No hay ninguna página en esta dirección.",
        "err_method": "Esta página no se puede usar de esa manera.",
        "err_too_large": "El formulario enviado es demasiado grande.",
        "err_unavailable": "El servicio está ocupado. Inténtalo de nuevo en un momento.",
        "err_internal": "Algo ha fallado por nuestra parte. Inténtalo de nuevo en un momento.",
        "unit_d": "d",
        "unit_h": "h",
        "unit_min": "min",
        "less_minute": "menos de un minuto",
        "ends_at": "hasta {time}",
    },
    "fr": {
        "page_title": "Connexion",
        "code_label": "Code d'accès",
        "code_hint": "Le code à 6 caractères de votre ticket.",
        "terms_heading": "Conditions d'utilisation",
        "accept_terms": "J'accepte les conditions d'utilisation",
        "submit": "Se connecter",
        "preview_banner": "Aperçu : voici la page que voient les invités. Aucun code ne peut être utilisé ici.",
        "oauth_unavailable": "La connexion avec un compte n'est pas encore disponible sur ce réseau.",
        "oauth_sign_in_with": "Se connecter avec {provider}",
        "oauth_hint": "Vous serez redirigé vers {provider} pour vous connecter, puis ramené ici.",
        "oauth_redirect_title": "Un instant…",
        "oauth_redirecting": "Redirection vers {provider} pour la connexion…",
        "oauth_continue_to": "Continuer vers {provider}",
        "cna_heading": "Continuez dans votre navigateur",
        "cna_body": "{provider} n'autorise pas la connexion depuis cette fenêtre. Fermez-la, restez "
        "connecté au Wi-Fi, ouvrez {browser} et allez à cette adresse :",
        "cna_url_label": "Adresse à ouvrir",
        "browser_default": "votre navigateur",
        "err_oauth_state": "Cette connexion n'a pas pu être vérifiée. Veuillez recommencer.",
        "err_oauth_expired": "Cette connexion a pris trop de temps. Veuillez recommencer.",
        "err_oauth_replayed": "Cette connexion a déjà été utilisée. Veuillez recommencer.",
        "err_oauth_denied": "La connexion a été annulée. Vous pouvez recommencer quand vous voulez.",
        "err_oauth_failed": "Le service de connexion n'a pas pu confirmer votre identité. Veuillez "
        "réessayer.",
        "err_oauth_unreachable": "Le service de connexion est injoignable pour le moment. Réessayez dans "
        "un instant.",
        "err_oauth_unavailable": "La connexion avec un compte n'est pas correctement configurée ici. "
        "Adressez-vous au personnel.",
        "err_oauth_test_link": "Ce lien de test n'est pas valide ou a expiré.",
        "oauth_test_title": "Test de connexion",
        "oauth_test_ok": "La connexion avec {provider} fonctionne. Voici qui vous êtes selon lui :",
        "oauth_test_note": "Ceci était un test : aucune session n'a été créée et le réseau n'a pas été "
        "ouvert.",
        "identity_provider": "Fournisseur",
        "identity_subject": "Identifiant",
        "identity_email": "E-mail",
        "identity_name": "Nom",
        "not_given": "non fourni",
        "err_missing_code": "Veuillez saisir votre code d'accès.",
        "err_malformed": "Un code d'accès comporte 6 lettres et chiffres. Vérifiez-le et réessayez.",
        "err_unknown": "Nous ne reconnaissons pas ce code. Vérifiez-le et réessayez.",
        "err_expired": "Ce code a expiré. Demandez-en un nouveau.",
        "err_used": "Ce code a déjà été utilisé. Chaque code ne fonctionne qu'une seule fois.",
        "err_used_many": "Ce code a déjà été utilisé {count} fois, autant qu'il le permet. Demandez-en un "
        "nouveau.",
        "err_in_use": "Ce code est déjà utilisé sur un autre appareil. Réessayez quand cet appareil sera "
        "déconnecté, ou demandez un nouveau code.",
        "err_in_use_many": "Ce code est déjà utilisé sur {count} appareils, autant qu'il en permet à la "
        "fois. Réessayez quand l'un d'eux sera déconnecté, ou demandez un nouveau code.",
        "err_terms": "Veuillez accepter les conditions d'utilisation pour continuer.",
        "locked_title": "Trop de tentatives",
        "locked_reload": "Cette page affichera de nouveau le formulaire une fois le délai écoulé.",
        "locked_client": "Trop de codes erronés ont été saisis depuis cet appareil. Réessayez dans {wait}.",
        "locked_site": "Trop de codes erronés ont été saisis sur ce réseau. Réessayez dans {wait}.",
        "success_title": "Vous êtes connecté",
        "success_body": "Vous avez accès à Internet. Bonne navigation !",
        "activating_title": "Connexion en cours…",
        "activating_body": "Votre session a commencé. Nous ouvrons le réseau pour votre appareil.",
        "activating_hint": "Cette page se met à jour toute seule dans quelques secondes.",
        "remaining": "Temps restant",
        "continue": "Continuer",
        "orig_unvouched": "Vous alliez vers :",
        "status_title": "Votre connexion",
        "status_link": "État de la connexion",
        "not_signed_in": "Vous n'êtes pas connecté à ce réseau.",
        "session_ended": "Votre session est terminée.",
        "data_left": "Données restantes",
        "speed": "Débit",
        "speed_value": "↓ {down} · ↑ {up}",
        "speed_unlimited": "sans limite",
        "quota_title": "Limite de données atteinte",
        "quota_exceeded": "Vous avez utilisé toutes les données que permettait cette session : elle est terminée. Demandez un nouveau code pour vous reconnecter.",
        "sign_in": "Se connecter",
        "start_again": "Recommencer",
        "error_title": "Désolé",
        "err_site_missing": "Ce lien de connexion est incomplet. Ouvrez une page web pour être redirigé.",
        "err_site_unknown": "Ce réseau n'est pas connu ici.",
        "err_params": "Ce lien de connexion contient des valeurs inutilisables.",
        "err_signature": "Ce lien de connexion n'a pas pu être vérifié. Ouvrez une page web pour revenir ici.",
        "err_link_expired": "Ce lien de connexion a expiré. Ouvrez une page web pour revenir ici.",
        "err_outside": "Votre appareil n'est pas sur un réseau desservi par ce portail.",
        "err_no_portal": "Aucune page de connexion n'est encore configurée pour votre réseau.",
        "err_token_missing": "Ce formulaire est incomplet. Veuillez recommencer.",
        "err_token_invalid": "Cette page de connexion n'a pas pu être vérifiée. Veuillez recommencer.",
        "err_token_expired": "Cette page de connexion a expiré. Veuillez recommencer.",
        "err_preview": "Ce lien d'aperçu est invalide ou a expiré.",
        "err_not_found": "Il n'y a aucune page à cette adresse.",
        "err_method": "Cette page ne peut pas être utilisée ainsi.",
        "err_too_large": "Le formulaire envoyé est trop volumineux.",
        "err_unavailable": "Le service est occupé. Réessayez dans un instant.",
        "err_internal": "Une erreur s'est produite de notre côté. Réessayez dans un instant.",
        "unit_d": "j",
        "unit_h": "h",
        "unit_min": "min",
        "less_minute": "moins d'une minute",
        "ends_at": "jusqu'à {time}",
    },
    "de": {
        "page_title": "Anmelden",
        "code_label": "Zugangscode",
        "code_hint": "Der 6-stellige Code auf Ihrem Gutschein.",
        "terms_heading": "Nutzungsbedingungen",
        "accept_terms": "Ich akzeptiere die Nutzungsbedingungen",
        "submit": "Verbinden",
        "preview_banner": "Vorschau: So sehen Gäste diese Seite. Hier kann nichts eingelöst werden.",
        "oauth_unavailable": "Die Anmeldung mit einem Konto ist in diesem Netz noch nicht verfügbar.",
        "oauth_sign_in_with": "Mit {provider} anmelden",
        "oauth_hint": "Sie werden zur Anmeldung zu {provider} weitergeleitet und danach hierher "
        "zurückgebracht.",
        "oauth_redirect_title": "Einen Moment…",
        "oauth_redirecting": "Sie werden zur Anmeldung zu {provider} weitergeleitet…",
        "oauth_continue_to": "Weiter zu {provider}",
        "cna_heading": "Im Browser fortfahren",
        "cna_body": "{provider} erlaubt keine Anmeldung in diesem Fenster. Schließen Sie es, bleiben Sie "
        "mit dem WLAN verbunden, öffnen Sie {browser} und rufen Sie diese Adresse auf:",
        "cna_url_label": "Zu öffnende Adresse",
        "browser_default": "Ihren Webbrowser",
        "err_oauth_state": "Diese Anmeldung konnte nicht überprüft werden. Bitte beginnen Sie erneut.",
        "err_oauth_expired": "Diese Anmeldung hat zu lange gedauert. Bitte beginnen Sie erneut.",
        "err_oauth_replayed": "Diese Anmeldung wurde bereits verwendet. Bitte beginnen Sie erneut.",
        "err_oauth_denied": "Die Anmeldung wurde abgebrochen. Sie können jederzeit erneut beginnen.",
        "err_oauth_failed": "Der Anmeldedienst konnte nicht bestätigen, wer Sie sind. Bitte versuchen Sie "
        "es erneut.",
        "err_oauth_unreachable": "Der Anmeldedienst ist gerade nicht erreichbar. Bitte versuchen Sie es "
        "gleich noch einmal.",
        "err_oauth_unavailable": "Die Anmeldung mit einem Konto ist hier nicht richtig eingerichtet. Bitte "
        "wenden Sie sich an das Personal.",
        "err_oauth_test_link": "Dieser Testlink ist ungültig oder abgelaufen.",
        "oauth_test_title": "Anmeldetest",
        "oauth_test_ok": "Die Anmeldung mit {provider} funktioniert. Das sagt der Dienst über Sie:",
        "oauth_test_note": "Dies war ein Test: Es wurde keine Sitzung angelegt und kein Netz freigegeben.",
        "identity_provider": "Anbieter",
        "identity_subject": "Kennung",
        "identity_email": "E-Mail",
        "identity_name": "Name",
        "not_given": "nicht angegeben",
        "err_missing_code": "Bitte geben Sie Ihren Zugangscode ein.",
        "err_malformed": "Ein Zugangscode besteht aus 6 Buchstaben und Ziffern. "
        "Bitte prüfen Sie ihn und versuchen Sie es erneut.",
        "err_unknown": "Diesen Code kennen wir nicht. Bitte prüfen Sie ihn und versuchen Sie es erneut.",
        "err_expired": "Dieser Code ist abgelaufen. Bitte fragen Sie nach einem neuen.",
        "err_used": "Dieser Code wurde bereits verwendet. Jeder Code funktioniert nur einmal.",
        "err_used_many": "Dieser Code wurde bereits {count}-mal verwendet, so oft wie erlaubt. Bitte fragen "
        "Sie nach einem neuen.",
        "err_in_use": "Dieser Code wird bereits auf einem anderen Gerät verwendet. Versuchen Sie es erneut, "
        "wenn dieses Gerät getrennt ist, oder fragen Sie nach einem neuen Code.",
        "err_in_use_many": "Dieser Code wird bereits auf {count} Geräten verwendet, so vielen wie "
        "gleichzeitig erlaubt. Versuchen Sie es erneut, wenn eines davon getrennt ist, oder fragen Sie nach "
        "einem neuen Code.",
        "err_terms": "Bitte akzeptieren Sie die Nutzungsbedingungen, um fortzufahren.",
        "locked_title": "Zu viele Versuche",
        "locked_reload": "Diese Seite zeigt das Anmeldeformular wieder, sobald die Zeit abgelaufen ist.",
        "locked_client": "Von diesem Gerät wurden zu viele falsche Codes eingegeben. "
        "Bitte versuchen Sie es in {wait} erneut.",
        "locked_site": "In diesem Netz wurden zu viele falsche Codes eingegeben. "
        "Bitte versuchen Sie es in {wait} erneut.",
        "success_title": "Sie sind verbunden",
        "success_body": "Sie sind jetzt online. Viel Spaß!",
        "activating_title": "Verbindung wird hergestellt…",
        "activating_body": "Ihre Sitzung hat begonnen. Wir geben das Netz für Ihr Gerät frei.",
        "activating_hint": "Diese Seite aktualisiert sich in wenigen Sekunden von selbst.",
        "remaining": "Verbleibende Zeit",
        "continue": "Weiter",
        "orig_unvouched": "Sie wollten zu:",
        "status_title": "Ihre Verbindung",
        "status_link": "Verbindungsstatus",
        "not_signed_in": "Sie sind in diesem Netz nicht angemeldet.",
        "session_ended": "Ihre Sitzung ist beendet.",
        "data_left": "Verbleibende Daten",
        "speed": "Geschwindigkeit",
        "speed_value": "↓ {down} · ↑ {up}",
        "speed_unlimited": "unbegrenzt",
        "quota_title": "Datenlimit erreicht",
        "quota_exceeded": "Sie haben das gesamte Datenvolumen dieser Sitzung verbraucht, daher wurde sie beendet. Fragen Sie nach einem neuen Code, um sich wieder zu verbinden.",
        "sign_in": "Anmelden",
        "start_again": "Neu beginnen",
        "error_title": "Entschuldigung",
        "err_site_missing": "Dieser Anmeldelink ist unvollständig. "
        "Öffnen Sie eine beliebige Webseite, um weitergeleitet zu werden.",
        "err_site_unknown": "Dieses Netz ist hier nicht bekannt.",
        "err_params": "Dieser Anmeldelink enthält unbrauchbare Werte.",
        "err_signature": "Dieser Anmeldelink konnte nicht überprüft werden. "
        "Öffnen Sie eine beliebige Webseite, um wieder hierher zu gelangen.",
        "err_link_expired": "Dieser Anmeldelink ist abgelaufen. "
        "Öffnen Sie eine beliebige Webseite, um wieder hierher zu gelangen.",
        "err_outside": "Ihr Gerät ist nicht in einem Netz, das dieses Portal bedient.",
        "err_no_portal": "Für Ihr Netz ist noch keine Anmeldeseite eingerichtet.",
        "err_token_missing": "Dieses Formular ist unvollständig. Bitte beginnen Sie neu.",
        "err_token_invalid": "Diese Anmeldeseite konnte nicht überprüft werden. Bitte beginnen Sie neu.",
        "err_token_expired": "Diese Anmeldeseite ist abgelaufen. Bitte beginnen Sie neu.",
        "err_preview": "Dieser Vorschaulink ist ungültig oder abgelaufen.",
        "err_not_found": "Unter dieser Adresse gibt es keine Seite.",
        "err_method": "Diese Seite kann so nicht verwendet werden.",
        "err_too_large": "Das gesendete Formular ist zu groß.",
        "err_unavailable": "Der Dienst ist ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
        "err_internal": "Bei uns ist etwas schiefgelaufen. Bitte versuchen Sie es gleich noch einmal.",
        "unit_d": "T",
        "unit_h": "Std.",
        "unit_min": "Min.",
        "less_minute": "weniger als eine Minute",
        "ends_at": "bis {time}",
    },
    "pt": {
        "page_title": "Entrar",
        "code_label": "Código de acesso",
        "code_hint": "O código de 6 caracteres do seu voucher.",
        "terms_heading": "Termos e condições",
        "accept_terms": "Aceito os termos e condições",
        "submit": "Conectar",
        "preview_banner": "Pré-visualização: esta é a página que os visitantes veem. Nada pode ser resgatado aqui.",
        "oauth_unavailable": "O acesso com uma conta ainda não está disponível nesta rede.",
        "oauth_sign_in_with": "Entrar com {provider}",
        "oauth_hint": "Você será levado ao {provider} para entrar e depois trazido de volta para cá.",
        "oauth_redirect_title": "Um momento…",
        "oauth_redirecting": "Levando você ao {provider} para entrar…",
        "oauth_continue_to": "Continuar para {provider}",
        "cna_heading": "Continue no seu navegador",
        "cna_body": "O {provider} não permite entrar a partir desta janela. Feche-a, continue conectado ao "
        "Wi-Fi, abra o {browser} e acesse este endereço:",
        "cna_url_label": "Endereço a abrir",
        "browser_default": "seu navegador",
        "err_oauth_state": "Não foi possível verificar este acesso. Comece de novo.",
        "err_oauth_expired": "Este acesso demorou demais. Comece de novo.",
        "err_oauth_replayed": "Este acesso já foi usado. Comece de novo.",
        "err_oauth_denied": "O acesso foi cancelado. Você pode começar de novo quando quiser.",
        "err_oauth_failed": "O serviço de acesso não conseguiu confirmar quem você é. Tente novamente.",
        "err_oauth_unreachable": "O serviço de acesso não está acessível agora. Tente novamente em "
        "instantes.",
        "err_oauth_unavailable": "O acesso com uma conta não está configurado corretamente aqui. Fale com "
        "a equipe.",
        "err_oauth_test_link": "Este link de teste é inválido ou expirou.",
        "oauth_test_title": "Teste de acesso",
        "oauth_test_ok": "O acesso com {provider} funciona. Isto é o que ele diz sobre você:",
        "oauth_test_note": "Isto foi um teste: nenhuma sessão foi criada e a rede não foi liberada.",
        "identity_provider": "Provedor",
        "identity_subject": "Identificador",
        "identity_email": "E-mail",
        "identity_name": "Nome",
        "not_given": "não informado",
        "err_missing_code": "Informe o seu código de acesso.",
        "err_malformed": "Um código de acesso tem 6 letras e números. Verifique-o e tente novamente.",
        "err_unknown": "Não reconhecemos esse código. Verifique-o e tente novamente.",
        "err_expired": "Este código expirou. Peça um novo.",
        "err_used": "Este código já foi usado. Cada código funciona apenas uma vez.",
        "err_used_many": "Este código já foi usado {count} vezes, todas as que permite. Peça um novo.",
        "err_in_use": "Este código já está em uso em outro dispositivo. Tente de novo quando esse "
        "dispositivo sair ou peça um novo código.",
        "err_in_use_many": "Este código já está em uso em {count} dispositivos, o máximo que permite ao "
        "mesmo tempo. Tente de novo quando um deles sair ou peça um novo código.",
        "err_terms": "Aceite os termos e condições para continuar.",
        "locked_title": "Tentativas demais",
        "locked_reload": "Esta página mostrará o formulário novamente quando o tempo acabar.",
        "locked_client": "Foram inseridos códigos incorretos demais neste dispositivo. Tente novamente em {wait}.",
        "locked_site": "Foram inseridos códigos incorretos demais nesta rede. Tente novamente em {wait}.",
        "success_title": "Você está conectado",
        "success_body": "Você já está online. Aproveite!",
        "activating_title": "Conectando…",
        "activating_body": "Sua sessão começou. Estamos liberando a rede para o seu dispositivo.",
        "activating_hint": "Esta página se atualiza sozinha em alguns segundos.",
        "remaining": "Tempo restante",
        "continue": "Continuar",
        "orig_unvouched": "Você estava indo para:",
        "status_title": "Sua conexão",
        "status_link": "Estado da conexão",
        "not_signed_in": "Você não está conectado nesta rede.",
        "session_ended": "Sua sessão terminou.",
        "data_left": "Dados restantes",
        "speed": "Velocidade",
        "speed_value": "↓ {down} · ↑ {up}",
        "speed_unlimited": "sem limite",
        "quota_title": "Limite de dados atingido",
        "quota_exceeded": "Você usou todos os dados que esta sessão permitia, por isso ela terminou. Peça um novo código para se conectar novamente.",
        "sign_in": "Entrar",
        "start_again": "Começar de novo",
        "error_title": "Desculpe",
        "err_site_missing": "Este link de acesso está incompleto. Abra qualquer página da web para ser redirecionado.",
        "err_site_unknown": "Esta rede não é conhecida aqui.",
        "err_params": "Este link de acesso contém valores que não podemos usar.",
        "err_signature": "Não foi possível verificar este link de acesso. Abra qualquer página da web para voltar aqui.",
        "err_link_expired": "Este link de acesso expirou. Abra qualquer página da web para voltar aqui.",
        "err_outside": "Seu dispositivo não está em uma rede atendida por este portal.",
        "err_no_portal": "Ainda não há uma página de acesso configurada para sua rede.",
        "err_token_missing": "Este formulário está incompleto. Comece de novo.",
        "err_token_invalid": "Não foi possível verificar esta página de acesso. Comece de novo.",
        "err_token_expired": "Esta página de acesso expirou. Comece de novo.",
        "err_preview": "Este link de pré-visualização é inválido ou expirou.",
        "err_not_found": "Não há nenhuma página neste endereço.",
        "err_method": "Esta página não pode ser usada dessa forma.",
        "err_too_large": "O formulário enviado é grande demais.",
        "err_unavailable": "O serviço está ocupado. Tente novamente em instantes.",
        "err_internal": "Algo deu errado do nosso lado. Tente novamente em instantes.",
        "unit_d": "d",
        "unit_h": "h",
        "unit_min": "min",
        "less_minute": "menos de um minuto",
        "ends_at": "até {time}",
    },
}
LOCALES = tuple(MESSAGES)


def _language(tag: str) -> str | None:
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in MESSAGES else None


def negotiate(accept_language: str | None, instance_locale: str | None) -> str:
    """The page language: the browser's first supported choice, else the instance's, else English."""
    if accept_language and len(accept_language) <= _MAX_ACCEPT_LANGUAGE:
        choices: list[tuple[float, int, str]] = []
        for position, item in enumerate(accept_language.split(",")):
            tag, _, params = item.partition(";")
            quality = 1.0
            params = params.strip()
            if params.startswith("q="):
                try:
                    quality = float(params[2:])
                except ValueError:
                    continue
            language = _language(tag)
            if language is not None and quality > 0:
                choices.append((-quality, position, language))
        if choices:
            return min(choices)[2]
    if instance_locale:
        language = _language(instance_locale)
        if language is not None:
            return language
    return DEFAULT_LOCALE


class Translator:
    """The messages of one language."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in MESSAGES else DEFAULT_LOCALE
        self._messages = MESSAGES[self.locale]

    def __call__(self, key: str, **values: object) -> str:
        """The message `key`, with `{placeholders}` filled from `values`."""
        text = self._messages.get(key) or MESSAGES[DEFAULT_LOCALE][key]
        return text.format(**values) if values else text

    def duration(self, seconds: float, *, round_up: bool = False) -> str:
        """A length of time as days, hours and minutes (`1 h 30 min`)."""
        total = int(seconds)
        minutes = -(-total // 60) if round_up else total // 60
        if minutes < 1:
            return self("less_minute")
        days, rest = divmod(minutes, 24 * 60)
        hours, mins = divmod(rest, 60)
        parts = []
        if days:
            parts.append(f"{days} {self('unit_d')}")
        if hours:
            parts.append(f"{hours} {self('unit_h')}")
        if mins and not days:
            parts.append(f"{mins} {self('unit_min')}")
        return " ".join(parts) or f"{days} {self('unit_d')}"
