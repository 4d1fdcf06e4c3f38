// An owner's journey as an app writes it, against types generated from the served OpenAPI
// document (generated/api.d.ts, by openapi-typescript): sign-up to redemption, with retries
// made safe by Idempotency-Key and refusals narrowed by their `error` slug.
// tests/test_typescript.py generates the types and runs `tsc --noEmit` on this file: it
// only has to type-check, which is what an app developer's build asks of the document.
import createClient from "openapi-fetch";

import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];

export async function ownerJourney(baseUrl: string): Promise<Schemas["Redemption"] | string> {
  const anonymous = createClient<paths>({ baseUrl });

  const signedUp = await anonymous.POST("/api/v1/auth/register", {
    headers: { "Idempotency-Key": crypto.randomUUID() },
    body: {
      email: "li.na@example.com",
      password: "a-long-password",
      display_name: "Li Na",
      city_code: "SZ",
    },
  });
  if (signedUp.error) {
    switch (signedUp.error.error) {
      case "account_exists":
        return "log in instead";
      case "unknown_city":
      case "invalid_phone":
      case "invalid_referral_code":
        return signedUp.error.message;
      default:
        return `sign-up refused: ${signedUp.error.error}`;
    }
  }
  // Required fields are typed as present: no `| undefined` to unwrap.
  const tokens: { access: string; refresh: string } = {
    access: signedUp.data.access_token,
    refresh: signedUp.data.refresh_token,
  };
  const me: Schemas["User"] = signedUp.data.user;
  const cityCodes: string[] = me.grants.flatMap((grant) => grant.city_codes);
  const partnerNames: string[] = me.city_partners.map((partner) => partner.name);
  console.log(me.display_name, me.tier, cityCodes, partnerNames);

  const owner = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${tokens.access}` },
  });

  const vehicle = await owner.POST("/api/v1/me/vehicles", {
    headers: { "Idempotency-Key": crypto.randomUUID() },
    body: { vin: "LSVAB2BM1CN000123", model: "smart #1" },
  });
  if (vehicle.error) {
    if (vehicle.error.error === "vin_taken") return "that VIN is someone else's";
    return vehicle.error.message;
  }
  const pending: "pending" | "verified" | "rejected" = vehicle.data.status;
  console.log(pending);

  const events = await owner.GET("/api/v1/events", { params: { query: { city: "SZ", limit: 20 } } });
  if (events.error) return events.error.message;
  const [next] = events.data.items;
  if (next !== undefined && next.my_registration === null) {
    const key = crypto.randomUUID();
    const registered = await owner.POST("/api/v1/events/{event_id}/registrations", {
      params: { path: { event_id: next.id }, header: { "Idempotency-Key": key } },
    });
    if (registered.error) {
      switch (registered.error.error) {
        case "already_registered":
        case "registration_closed":
          break;
        case "not_verified_owner":
          return "verify a vehicle first";
        default:
          return registered.error.message;
      }
    } else {
      const replayed = registered.response.headers.get("Idempotent-Replayed") === "true";
      const seat: "confirmed" | "waitlisted" | string = registered.data.status;
      console.log(seat, registered.data.waitlist_position, replayed);
    }
  }

  const points = await owner.GET("/api/v1/me/points");
  if (points.error) return points.error.message;
  const balance: number = points.data.balance;

  const offers = await owner.GET("/api/v1/rewards", { params: { query: { include_locked: true } } });
  if (offers.error) return offers.error.message;
  const affordable = offers.data.items.find((offer) => offer.redeemable && offer.cost <= balance);
  const locked = offers.data.items.filter((offer) => !offer.redeemable);
  // Absent when redeemable: the one field a generated type leaves optional.
  console.log(locked.map((offer) => offer.locked_reason ?? "redeemable"));
  if (affordable === undefined) return "nothing to redeem yet";

  // One key for the redemption and every retry of it: a lost answer never costs twice.
  const key = crypto.randomUUID();
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const redeemed = await owner.POST("/api/v1/redemptions", {
      params: { header: { "Idempotency-Key": key } },
      body: { reward_id: affordable.id, quantity: 1 },
    });
    if (redeemed.data) {
      const status: "pending" | "fulfilled" | "cancelled" = redeemed.data.status;
      console.log(status, redeemed.data.points);
      return redeemed.data;
    }
    const refusal = redeemed.error;
    switch (refusal.error) {
      case "insufficient_points":
        return `not enough points (${balance})`;
      case "city_too_recent":
        // A refusal's own details are typed with it.
        return `wait until ${refusal.eligible_from}`;
      case "out_of_stock":
      case "limit_reached":
      case "tier_too_low":
      case "not_in_city":
        return refusal.message;
      case "service_unavailable":
        continue; // sent again with the same key, as the guide says
      default:
        return `refused: ${refusal.error}`;
    }
  }

  // Every CSV has a path of its own: a generated client reads it as text.
  const csv = await owner.GET("/api/v1/city-partners/{partner_id}/scorecard.csv", {
    params: { path: { partner_id: "an-id-from-GET-/me" }, query: { month: "2026-12" } },
    parseAs: "text",
  });
  return csv.data ?? "no scorecard";
}
