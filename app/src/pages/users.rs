//! Users page (admin): the shared mode's users with their role, state and open sessions;
//! add a user, change a role, disable or enable, reset a password, end a session. Every
//! change is audited; the CLI (`bss-control user add`) stays for the first admin.
use leptos::prelude::*;

use crate::{
    api::{Role, UserRow},
    error::AppError,
};

/// What this page asks of the server (implemented in `server/src/auth.rs`).
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait UsersApi: Send + Sync {
    /// Every user with their open sessions (admin).
    async fn users(&self, who: &crate::api::Principal) -> Result<Vec<UserRow>, AppError>;
    /// A new user (admin).
    async fn add_user(&self, who: &crate::api::Principal, name: &str, role: &str, password: &str) -> Result<String, AppError>;
    /// `verb`: `role` (value: the role), `disable`, `enable`, `password` (value: the new one) (admin).
    async fn update_user(&self, who: &crate::api::Principal, name: &str, verb: &str, value: &str) -> Result<String, AppError>;
    /// Ends one session (admin).
    async fn revoke_session(&self, who: &crate::api::Principal, id: &str) -> Result<String, AppError>;
}

#[server]
pub async fn get_users() -> Result<Vec<UserRow>, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.users(&who).await
}

#[server]
pub async fn add_user(name: String, role: String, password: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.add_user(&who, &name, &role, &password).await
}

#[server]
pub async fn update_user(name: String, verb: String, value: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.update_user(&who, &name, &verb, &value).await
}

#[server]
pub async fn revoke_session(id: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.revoke_session(&who, &id).await
}

const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

#[component]
pub fn Users() -> impl IntoView {
    let add = ServerAction::<AddUser>::new();
    let update = ServerAction::<UpdateUser>::new();
    let revoke = ServerAction::<RevokeSession>::new();
    // Refetch after every change.
    let version = move || (add.version().get(), update.version().get(), revoke.version().get());
    let users = crate::live::resource(version, |_| get_users());
    let result = crate::live::latest_outcome(&[add.value(), update.value(), revoke.value()]);
    let (name, role, password) = (RwSignal::new(String::new()), RwSignal::new("viewer".to_string()), RwSignal::new(String::new()));
    view! {
        <h1>"Users"</h1>
        <p class="muted">"Who may sign in to this panel, with which role. Disabling a user or resetting a password ends their sessions. Every change is in the audit log."</p>
        <p role="status" aria-label="Last change" class="action-result">{move || result.get()}</p>
        <form class="inline card" aria-label="Add a user" on:submit=move |ev| {
            ev.prevent_default();
            add.dispatch(AddUser { name: name.get(), role: role.get(), password: password.get() });
            password.set(String::new());
        }>
            <label>"Name " <input prop:value=name on:input=move |e| name.set(event_target_value(&e)) aria-label="New user name" autocomplete="off"/></label>
            <label>" role " <select aria-label="New user role" on:change=move |e| role.set(event_target_value(&e))>
                {ROLES.map(|r| view! { <option value=r.as_str() selected=move || role.get() == r.as_str()>{r.as_str()}</option> }).collect_view()}
            </select></label>
            <label>" password " <input type="password" prop:value=password on:input=move |e| password.set(event_target_value(&e)) aria-label="New user password" autocomplete="new-password"/></label>
            <button type="submit" disabled=move || add.pending().get()>"Add user"</button>
        </form>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the users…"</p> }>
            {move || users.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(rows) => view! {
                    <table class="services" aria-label="Users">
                        <thead><tr><th>"User"</th><th>"Role"</th><th>"State"</th><th>"Sessions"</th><th>"Password"</th></tr></thead>
                        <tbody>{rows.into_iter().map(|u| user_row(u, update, revoke)).collect_view()}</tbody>
                    </table>
                }.into_any(),
            })}
        </Transition>
    }
}

fn user_row(u: UserRow, update: ServerAction<UpdateUser>, revoke: ServerAction<RevokeSession>) -> impl IntoView {
    let new_password = RwSignal::new(String::new());
    let (name_role, name_toggle, name_pw) = (u.name.clone(), u.name.clone(), u.name.clone());
    let toggle_verb = if u.disabled { "enable" } else { "disable" };
    view! {
        <tr aria-label=u.name.clone()>
            <td><b>{u.name.clone()}</b><br/><span class="muted">"since " {u.created_at.clone()}</span></td>
            <td>
                <select aria-label=format!("Role of {}", u.name) on:change=move |e| {
                    update.dispatch(UpdateUser { name: name_role.clone(), verb: "role".into(), value: event_target_value(&e) });
                }>
                    {ROLES.map(|r| view! { <option value=r.as_str() selected=u.role == r>{r.as_str()}</option> }).collect_view()}
                </select>
            </td>
            <td>
                <span class=if u.disabled { "badge bad" } else { "badge ok" }>{if u.disabled { "disabled" } else { "active" }}</span>
                " " <button class="secondary" on:click=move |_| { update.dispatch(UpdateUser { name: name_toggle.clone(), verb: toggle_verb.into(), value: String::new() }); }>{if u.disabled { "Enable" } else { "Disable" }}</button>
            </td>
            <td>
                <ul class="plain">
                    {u.sessions.into_iter().map(|s| {
                        let id = s.id.clone();
                        view! {
                            <li>{format!("{} · until {}", crate::live::clock(s.created_at as u64 * 1000), crate::live::clock(s.expires_at as u64 * 1000))}
                                " " <button class="secondary" aria-label=format!("End session {}", s.id) on:click=move |_| { revoke.dispatch(RevokeSession { id: id.clone() }); }>"End"</button></li>
                        }
                    }).collect_view()}
                </ul>
            </td>
            <td>
                <form class="inline" on:submit=move |ev| {
                    ev.prevent_default();
                    update.dispatch(UpdateUser { name: name_pw.clone(), verb: "password".into(), value: new_password.get() });
                    new_password.set(String::new());
                }>
                    <input type="password" autocomplete="new-password" aria-label=format!("New password for {}", u.name) prop:value=new_password on:input=move |e| new_password.set(event_target_value(&e))/>
                    <button type="submit" class="secondary">"Reset"</button>
                </form>
            </td>
        </tr>
    }
}
