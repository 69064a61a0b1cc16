//! What each page shows, and how it is turned into HTML: [`Renderer`], with askama
//! templates (`oauth-core/templates/oauth/`) as the default. An embedding service
//! that wants its own look implements [`Renderer`] (with any template engine) and
//! passes it to [`Pages::renderer`](super::Pages::renderer); the flow stays the
//! library's.

use askama::Template;

/// A scope as the user reads it.
#[derive(Debug, Clone)]
pub struct ScopeLine {
    /// The scope token.
    pub name: String,
    /// Its human description (configurable with [`Pages::scope_description`](super::Pages::scope_description)).
    pub description: String,
}

/// What every page knows besides its own content.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The service's name, shown in the title and the bar.
    pub site_name: String,
    /// The stylesheet's path.
    pub stylesheet: String,
    /// The signed-in user's email, if any (the bar then shows "Sign out").
    pub signed_in: Option<String>,
    /// The session's CSRF token, for the sign-out form.
    pub csrf_token: String,
}

/// `GET /accounts/login/`.
#[derive(Debug, Clone)]
pub struct LoginPage {
    /// Hidden form field `csrfmiddlewaretoken`.
    pub csrf_token: String,
    /// Where to go after signing in (hidden field `next`).
    pub next: String,
    /// The email typed before, shown again after a failure.
    pub username: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// The consent page of `GET /o/authorize/`.
#[derive(Debug, Clone)]
pub struct ConsentPage {
    /// Hidden form field `csrfmiddlewaretoken`.
    pub csrf_token: String,
    /// The client's display name.
    pub client_name: String,
    /// The client's id.
    pub client_id: String,
    /// Each requested scope.
    pub scopes: Vec<ScopeLine>,
    /// Where the browser goes afterwards (the redirect URI without its query).
    pub redirect_to: String,
    /// The authorization request's parameters, re-sent as hidden fields; the
    /// server validates them again on submission. The Allow button is a submit
    /// named `allow`.
    pub hidden: Vec<(String, String)>,
}

/// One application on `GET /o/authorized_tokens/`.
#[derive(Debug, Clone)]
pub struct AuthorizedApp {
    /// The client's id (the revoke form's `client_id`).
    pub client_id: String,
    /// The client's display name.
    pub name: String,
    /// What the user granted.
    pub scopes: Vec<ScopeLine>,
    /// When, as text (UTC).
    pub granted_at: String,
}

/// `GET /o/authorized_tokens/`.
#[derive(Debug, Clone)]
pub struct AuthorizedPage {
    /// Hidden form field `csrfmiddlewaretoken`.
    pub csrf_token: String,
    /// The applications, newest first.
    pub apps: Vec<AuthorizedApp>,
    /// A message after an action.
    pub message: Option<String>,
}

/// An error page (bad client or redirect URI, expired form, throttled, …).
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// The heading.
    pub title: String,
    /// What happened and what to do.
    pub message: String,
}

/// Why a page could not be rendered.
pub type RenderError = Box<dyn std::error::Error + Send + Sync>;

/// Turns page data into HTML. Every value must be escaped for HTML by the
/// implementation (askama, minijinja and Tera do it by default for `.html`).
pub trait Renderer: Send + Sync {
    /// The sign-in form.
    ///
    /// # Errors
    /// When the template fails.
    fn login(&self, frame: &Frame, page: &LoginPage) -> Result<String, RenderError>;
    /// The consent form.
    ///
    /// # Errors
    /// When the template fails.
    fn consent(&self, frame: &Frame, page: &ConsentPage) -> Result<String, RenderError>;
    /// The list of authorized applications.
    ///
    /// # Errors
    /// When the template fails.
    fn authorized(&self, frame: &Frame, page: &AuthorizedPage) -> Result<String, RenderError>;
    /// An error.
    ///
    /// # Errors
    /// When the template fails.
    fn error(&self, frame: &Frame, page: &ErrorPage) -> Result<String, RenderError>;
}

/// The built-in look: askama templates compiled into the crate, escaped by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRenderer;

macro_rules! template {
    ($name:ident, $page:ty, $path:literal) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            site_name: &'a str,
            stylesheet: &'a str,
            signed_in: Option<&'a str>,
            csrf_token: &'a str,
            page: &'a $page,
        }

        impl<'a> $name<'a> {
            fn new(frame: &'a Frame, page: &'a $page) -> Self {
                Self {
                    site_name: &frame.site_name,
                    stylesheet: &frame.stylesheet,
                    signed_in: frame.signed_in.as_deref(),
                    csrf_token: &frame.csrf_token,
                    page,
                }
            }
        }
    };
}

template!(LoginTemplate, LoginPage, "oauth/login.html");
template!(ConsentTemplate, ConsentPage, "oauth/consent.html");
template!(AuthorizedTemplate, AuthorizedPage, "oauth/authorized.html");
template!(ErrorTemplate, ErrorPage, "oauth/error.html");

impl Renderer for DefaultRenderer {
    fn login(&self, frame: &Frame, page: &LoginPage) -> Result<String, RenderError> {
        Ok(LoginTemplate::new(frame, page).render()?)
    }
    fn consent(&self, frame: &Frame, page: &ConsentPage) -> Result<String, RenderError> {
        Ok(ConsentTemplate::new(frame, page).render()?)
    }
    fn authorized(&self, frame: &Frame, page: &AuthorizedPage) -> Result<String, RenderError> {
        Ok(AuthorizedTemplate::new(frame, page).render()?)
    }
    fn error(&self, frame: &Frame, page: &ErrorPage) -> Result<String, RenderError> {
        Ok(ErrorTemplate::new(frame, page).render()?)
    }
}

/// The built-in stylesheet.
pub(crate) const STYLESHEET: &str = include_str!("../../templates/oauth/style.css");
