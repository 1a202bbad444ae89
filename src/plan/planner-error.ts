// The planner's one refusal: no plan can exist for this input.
import { CrError, EXIT_BAD_INPUT } from '../errors.js';

/** No plan can exist for this input; the message says why. */
export class PlanImpossible extends CrError {
  constructor(message: string) {
    super(message, EXIT_BAD_INPUT);
    this.name = 'PlanImpossible';
  }
}
