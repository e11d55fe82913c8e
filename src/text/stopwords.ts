/** A short English stop list: function words carry neither topic nor fact. */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    'a an the and or but if of to in on at by for with from as is are was were be been being it its this that these those ' +
    'he she they we you i me my his her their our your them him us do does did done have has had not no so than then too ' +
    'very can could would should will shall may might must just also about into over after before up down out off again ' +
    'what which who whom whose when where why how all any both each few more most other some such only own same there here ' +
    'yes s t don doesn didn isn wasn aren weren'
  ).split(' '),
);

/** Chat fillers that are noise for retrieval (but kept by the bench's fact metric). */
export const CHAT_FILLERS: ReadonlySet<string> = new Set('im ive youre thats oh hey hi wow really yeah'.split(' '));

/** The session header of LoCoMo-style transcripts, e.g. `[Session 5, 1:56 pm on 8 May, 2023]`. */
export const SESSION_HEADER = /^\[Session [^\]]*\]/;
