/**
 * The state of one request's session, as plain values and pure transitions,
 * after scs's `status`: the request either has not looked at its session yet,
 * holds it (stored or new), has moved it to a new id, or has destroyed it.
 * Everything that must happen at the end of the request follows from the
 * state alone (see {@link plan}), and so does the cookie (see {@link cookieFor}).
 */
import * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import type * as Session from "../Session.js"
import type * as SessionCookie from "../SessionCookie.js"

/**
 * - `Unloaded`: the handler has not touched the session; the cookie has not even been verified.
 * - `Active`: the session the request works on. `base` is what the store holds (undefined while
 *   the session exists only in this request); `issued` says the store made it during this request.
 * - `Regenerated`: the data moves to a new id at commit (`regenerate`, against fixation), from the
 *   stored session `from` (if it was stored): the move happens only if `from` still exists then
 *   (see `SessionStore.regenerate`). `login` binds the new id to `user`; a plain `regenerate` keeps
 *   the binding `from` has at that moment (`user` is the one it was read with).
 * - `Destroyed`: the session was deleted; data set afterwards starts a new one.
 *
 * `retired` lists the stored ids to delete at commit; `isNew` says the request came without a
 * session that the store knew; `expire` is the session's own lifetime once saved (`undefined`: the
 * store's), which `setExpire` and `login` change.
 */
export type State =
  | { readonly _tag: "Unloaded" }
  | {
    readonly _tag: "Active"
    readonly base: Session.Session | undefined
    readonly data: Session.SessionData
    readonly expire: Duration.Duration | undefined
    readonly issued: boolean
    readonly isNew: boolean
    readonly retired: ReadonlyArray<string>
  }
  | {
    readonly _tag: "Regenerated"
    readonly data: Session.SessionData
    readonly expire: Duration.Duration | undefined
    readonly user: string | undefined
    readonly from: string | undefined
    readonly login: boolean
    readonly isNew: boolean
    readonly retired: ReadonlyArray<string>
  }
  | {
    readonly _tag: "Destroyed"
    readonly data: Session.SessionData
    readonly expire: Duration.Duration | undefined
    readonly isNew: boolean
    readonly retired: ReadonlyArray<string>
  }

/** A state in which the session has been looked at. */
export type Loaded = Exclude<State, { readonly _tag: "Unloaded" }>

/** The state of every request before its handler touches the session. */
export const unloaded: State = { _tag: "Unloaded" }

const noIds: ReadonlyArray<string> = []

/** The frozen empty data of a new session. */
export const emptyData: Session.SessionData = Object.freeze({})

/** The store answered the load: `found` is the stored session, if the cookie named one. */
export const loaded = (found: Session.Session | undefined): Loaded =>
  found === undefined
    ? {
      _tag: "Active",
      base: undefined,
      data: emptyData,
      expire: undefined,
      issued: false,
      isNew: true,
      retired: noIds
    }
    : {
      _tag: "Active",
      base: found,
      data: found.data,
      expire: found.expire,
      issued: false,
      isNew: false,
      retired: noIds
    }

/** The data changed. */
export const withData = (state: Loaded, data: Session.SessionData): Loaded =>
  data === state.data ? state : { ...state, data }

/** The session's lifetime changed (`setExpire`); `undefined` is the store's. */
export const withExpire = (state: Loaded, expire: Duration.Duration | undefined): Loaded =>
  sameLifetime(expire, state.expire) ? state : { ...state, expire }

/** Whether two lifetimes are the same (`undefined`: the store's). */
export const sameLifetime = (a: Duration.Duration | undefined, b: Duration.Duration | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && Duration.toMillis(a) === Duration.toMillis(b))

/** Whether flushing `session` changes the lifetime it was read with. */
export const changesLifetime = (session: Session.Session): boolean =>
  (session.expire === undefined ? undefined : Duration.toMillis(session.expire)) !== session.snapshot?.expire

/** The store made `session` from this request's data (its id was asked for, or at commit). */
export const issued = (state: Loaded, session: Session.Session): Loaded => ({
  _tag: "Active",
  base: session,
  data: session.data,
  expire: session.expire,
  issued: true,
  isNew: state.isNew,
  retired: state.retired
})

/**
 * `regenerate`: the data will be moved to a new id and the stored session deleted, in one step of
 * the store. `login` passes the user to bind the new id to; otherwise the binding stays as it is.
 */
export const regenerated = (state: Loaded, user?: string): Loaded =>
  state._tag === "Regenerated"
    ? { ...state, user: user ?? state.user, login: state.login || user !== undefined }
    : {
      _tag: "Regenerated",
      data: state.data,
      expire: state.expire,
      user: user ?? userOf(state),
      from: storedId(state),
      login: user !== undefined,
      isNew: state.isNew,
      retired: state.retired
    }

/** The user the request's session is bound to (or will be, once saved). */
export const userOf = (state: Loaded): string | undefined =>
  state._tag === "Active" ? state.base?.user : state._tag === "Regenerated" ? state.user : undefined

/**
 * `destroy`: the session is deleted and its data dropped. From `Unloaded`, the id comes from the
 * verified cookie: deleting needs no load.
 */
export const destroyed = (state: State, cookieId: string | undefined): Loaded =>
  state._tag === "Unloaded"
    ? {
      _tag: "Destroyed",
      data: emptyData,
      expire: undefined,
      isNew: cookieId === undefined,
      retired: cookieId === undefined ? noIds : [cookieId]
    }
    : { _tag: "Destroyed", data: emptyData, expire: undefined, isNew: state.isNew, retired: retire(state) }

const retire = (state: Loaded): ReadonlyArray<string> => {
  const stored = state._tag === "Active" ? state.base?.id : state._tag === "Regenerated" ? state.from : undefined
  return stored === undefined ? state.retired : [...state.retired, stored]
}

/** The id the session has in the store, if it has one yet. */
export const storedId = (state: Loaded): string | undefined => state._tag === "Active" ? state.base?.id : undefined

/**
 * What the client's cookie should say after the request:
 * - `Kept`: the id it sent is still its session;
 * - `Issued`: a new id, made during this request;
 * - `Ended`: its session was destroyed and nothing replaced it;
 * - `None`: it has no session, and had none.
 */
export type Outcome =
  | { readonly _tag: "Kept"; readonly id: string }
  | { readonly _tag: "Issued"; readonly id: string }
  | { readonly _tag: "Ended" }
  | { readonly _tag: "None" }

/** What to send back: nothing, a signed id, or an expired cookie. */
export type CookieAction =
  | { readonly _tag: "None" }
  | { readonly _tag: "Set"; readonly id: string }
  | { readonly _tag: "Expire" }

/** No Set-Cookie at all. */
export const noCookie: CookieAction = { _tag: "None" }
const ended: Outcome = { _tag: "Ended" }
const none: Outcome = { _tag: "None" }

/**
 * The one rule for Set-Cookie. A new id is always sent. A kept id is sent again when `rolling`
 * renews it on every response, when the store `refreshed` the session's lifetime during the request
 * (the cookie then follows it: the caller says so only when no explicit `maxAge` is set), or when it
 * came signed with an older secret and must be re-signed. An ended session's cookie is expired, if
 * the client sent one.
 */
export const cookieFor = (
  outcome: Outcome,
  incoming: Option.Option<SessionCookie.Verified>,
  sentCookie: boolean,
  rolling: boolean,
  refreshed = false
): CookieAction => {
  switch (outcome._tag) {
    case "Issued":
      return { _tag: "Set", id: outcome.id }
    case "Kept":
      return rolling || refreshed ||
          (incoming._tag === "Some" && incoming.value.rotated && incoming.value.value === outcome.id)
        ? { _tag: "Set", id: outcome.id }
        : noCookie
    case "Ended":
      return sentCookie ? { _tag: "Expire" } : noCookie
    case "None":
      return noCookie
  }
}

/** The writes that end a request, in order: deletions, then one flush or one create. */
export interface Plan {
  /** Stored sessions to delete first, so that a later failure never leaves two live copies of the data. */
  readonly retired: ReadonlyArray<string>
  /** The changed session to flush (only its changed fields are written). */
  readonly flush: Session.Session | undefined
  /** Data to save as a new session. */
  readonly create: Session.SessionData | undefined
  /** The user to bind the new session to (with `from` and not `login`: the binding it was read with). */
  readonly user: string | undefined
  /** The new session's own lifetime (`undefined`: the store's). */
  readonly expire: Duration.Duration | undefined
  /**
   * The stored session that `create` replaces (a regenerate): the new one is made only if this one
   * still exists, with its binding unless `login`; if it is gone, the request's session has ended.
   */
  readonly from?: string | undefined
  readonly login?: boolean | undefined
  /** The outcome once the writes succeed; for `create`, the new id replaces the placeholder. */
  readonly outcome: Outcome
}

const hasFields = (data: Session.SessionData): boolean => {
  for (const _ in data) return true
  return false
}

/**
 * What a loaded request must write. `saveUninitialized` saves a new session even when the handler
 * only read it. Untouched data keeps its identity, so a read-only request plans nothing at all.
 */
export const plan = (state: Loaded, saveUninitialized: boolean): Plan => {
  switch (state._tag) {
    case "Active": {
      if (state.base !== undefined) {
        const outcome: Outcome = state.issued
          ? { _tag: "Issued", id: state.base.id }
          : { _tag: "Kept", id: state.base.id }
        const flush = state.data === state.base.data && sameLifetime(state.expire, state.base.expire)
          ? undefined
          : { ...state.base, data: state.data, expire: state.expire }
        return { retired: state.retired, flush, create: undefined, user: undefined, expire: undefined, outcome }
      }
      const save = hasFields(state.data) || saveUninitialized
      return {
        retired: state.retired,
        flush: undefined,
        create: save ? state.data : undefined,
        user: undefined,
        expire: state.expire,
        outcome: none
      }
    }
    case "Regenerated":
      // Saved even when empty: a login must leave a session behind.
      return {
        retired: state.retired,
        flush: undefined,
        create: state.data,
        user: state.user,
        expire: state.expire,
        from: state.from,
        login: state.login,
        outcome: none
      }
    case "Destroyed": {
      const save = hasFields(state.data)
      return {
        retired: state.retired,
        flush: undefined,
        create: save ? state.data : undefined,
        user: undefined,
        expire: state.expire,
        outcome: ended
      }
    }
  }
}
